#!/usr/bin/env bash
# The test command: everything CI runs. Tests that need MongoDB start SecantusDB themselves
# (installed into .venv on first use) unless CAAS_TEST_MONGODB_URI names a server.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-server.sh
cargo build --locked --quiet
cargo test --locked --no-fail-fast 2>&1 | tee /tmp/caas-test-$$.log
# The benchmarks at a tiny size (they check their own results; no time is asserted).
MONGODB_URI="${CAAS_TEST_MONGODB_URI:-}" scripts/bench.sh smoke
cargo run --locked --quiet -- schema lint
cargo run --locked --quiet -- schema json-schema --check
cargo run --locked --quiet -- docs --check
scripts/lint-workflows.sh
# The demo, on its own server, as a newcomer runs it: it must succeed and stay short.
lines=$(env -u MONGODB_URI scripts/demo.sh | tee /tmp/caas-demo-$$.log | wc -l)
if [ "$lines" -ge 100 ]; then echo "the demo printed $lines lines (at most 99)"; exit 1; fi
echo "demo: $lines lines"
# The existing-deployment story of the README: hand-made databases adopted to a clean diff.
env -u MONGODB_URI scripts/adopt.sh >/tmp/caas-adopt-$$.log && tail -1 /tmp/caas-adopt-$$.log | grep "in sync" >/dev/null \
  || { cat /tmp/caas-adopt-$$.log; echo "the adoption story did not end in sync"; exit 1; }
rm -f /tmp/caas-adopt-$$.log
echo "adoption story: in sync"
rm -f /tmp/caas-demo-$$.log
# One closing line for the whole suite, counted from cargo's per-binary results.
awk '/^test result:/ { p += $4; f += $6 } END { printf "caas: %d passed, %d failed\n", p, f }' /tmp/caas-test-$$.log
rm -f /tmp/caas-test-$$.log
