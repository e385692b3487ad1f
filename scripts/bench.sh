#!/usr/bin/env bash
# Run the benchmarks (see BENCHMARKS.md) against a fresh in-memory SecantusDB, or against
# MONGODB_URI if set. Arguments go to the bench binary, e.g. `scripts/bench.sh seed --scale 20`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MONGODB_URI:-}" ]; then
  scripts/install-test-server.sh
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # CAAS_BENCH_SERVER_ARGS: extra SecantusDB flags, e.g. "--cache-size 4G".
  .venv/bin/python -m secantus --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING ${CAAS_BENCH_SERVER_ARGS:-} >/tmp/caas-bench-server.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
fi
if [ "${1:-}" = smoke ]; then
  # Every benchmark at a tiny size on the debug build, to keep them working (CI runs this
  # from scripts/test.sh). Each one checks its own result (no drift after apply, every
  # document backfilled once...); no time is asserted.
  run() { cargo test --locked --quiet --bench caas_bench -- "$@"; }
  run seed --scale 1 --rounds 1
  run fleet --tenants 10
  run scaling --tenants 4
  run migrate --tenants 10 --concurrency 4
  run backfill --docs 300 --batch 70
  run memory --targets 20
  run move --docs 300 --moves 2 --batch 100
  exit 0
fi
cargo bench --locked --quiet --bench caas_bench -- "$@"
