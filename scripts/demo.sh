#!/usr/bin/env bash
# The demo: build caas, start a local SecantusDB unless MONGODB_URI is set, and run the
# tool end to end on the CAAS catalogue: lint, register tenants in every tier, apply,
# show that a second apply and the drift check find nothing, then show the tables.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
caas="${CARGO_TARGET_DIR:-$PWD/target}/debug/caas"

if [ -z "${MONGODB_URI:-}" ]; then
  scripts/install-test-server.sh
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .venv/bin/python -m secantus --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING >/tmp/caas-demo-server.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
  echo "== started SecantusDB on port $port (in memory; stopped when the demo ends)"
fi

step() { echo; echo "== caas $*"; "$caas" "$@"; }
# A demo tenant may already exist on a reused server: that is fine.
tenant() { "$caas" tenant add "$@" 2>&1 | sed 's/^/   /' || true; }

step schema lint
step schema compile --collection users --format table
echo; echo "== registering one tenant per tier"
tenant acme --tier free --name "Acme Chat"
tenant bluebird --tier starter --name "Bluebird"
tenant corvid --tier pro --name "Corvid Labs"
tenant dynamo --tier enterprise --name "Dynamo Inc"
step tenant list
step schema plan --tenant corvid
step schema apply --concurrency 4
step schema apply
step seed
step migrate up --concurrency 4
step seed
step migrate status
step schema diff --exit-code
