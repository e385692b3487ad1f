#!/usr/bin/env bash
# The demo: caas end to end on the CAAS catalogue, told as a story in under 100 lines.
# Starts a local in-memory SecantusDB unless MONGODB_URI is set.
#   --keep-server   leave the server running at the end and print its URI (for mongosh)
#   --verbose       full tables instead of their summaries
set -euo pipefail
cd "$(dirname "$0")/.."
keep=false
verbose=false
for arg in "$@"; do
  case "$arg" in
    --keep-server) keep=true ;;
    --verbose | -v) verbose=true ;;
    *) echo "usage: scripts/demo.sh [--keep-server] [--verbose]" >&2; exit 2 ;;
  esac
done
cargo build --locked --quiet
caas="${CARGO_TARGET_DIR:-$PWD/target}/debug/caas"
scripts/install-test-server.sh >/dev/null # also gives the demo pymongo, to play the intruder
py=.venv/bin/python

if [ -z "${MONGODB_URI:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .venv/bin/python -m secantus --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING >/tmp/caas-demo-server.log 2>&1 &
  server=$!
  $keep || trap 'kill $server 2>/dev/null' EXIT
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
fi
shared=$(sed -n 's/^shared *= *"\(.*\)"/\1/p' caas.toml)
shared=${shared:-caas_shared}

step() { printf '\n== %s\n' "$*"; }
# Run caas; print its output whole with --verbose, else only the lines the filter keeps
# (progress on stderr too with --verbose). A failing command prints everything and stops.
# Filters read their whole input (sed -n 1,4p, not head -4): under pipefail a writer cut off
# by an early reader dies of SIGPIPE (exit 141) once its output passes a pipe buffer.
show() {
  local filter=$1 out err rc=0
  shift
  echo "\$ caas $*"
  out=$(mktemp) err=$(mktemp)
  "$caas" "$@" >"$out" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then cat "$out" "$err"; echo "caas exited $rc" >&2; exit "$rc"; fi
  if $verbose; then cat "$err" "$out"; else eval "$filter" <"$out"; fi
  rm -f "$out" "$err"
}
mongo() { "$py" -c "import pymongo,sys; db=pymongo.MongoClient(sys.argv[1])['$shared']; $1" "$MONGODB_URI"; }

step "1. Specs are code: 31 collections in 5 domains, linted offline"
show "tail -1" schema lint
step "2. One spec, three physical forms: shared (tenant_id prefix), Pro set, Enterprise database"
show "head -6" schema compile --collection users --format table
step "3. Seed registers one demo tenant per tier, builds their targets from the specs, fills them"
show "tail -1" seed
show "cat" tenant list
step "4. Migrations run once per target, recorded in a ledger beside the data"
show "tail -1" migrate up
show "head -1" migrate status
step "5. Someone changes the database behind caas's back: drops an index, loosens a validator"
mongo "db.users.drop_index('tenant_id_1_email_1'); db.command('collMod', 'users', validationLevel='off')"
echo "\$ caas schema diff --exit-code"
"$caas" schema diff --exit-code && echo "(in sync?)" || echo "exit $?: drift found, CI would fail here"
show "tail -1" schema apply --tier free
show "cat" schema diff
step "6. A destructive change is never made by accident: an index nobody declared is held back"
mongo "db.users.create_index([('display_name', 1)], name='adhoc_display_name')"
show "grep -o 'caas_shared.users: undeclared index adhoc_display_name[^(]*(undeclared' | sed 's/ (undeclared/: held back, not dropped/'" schema apply --tier free
show "tail -1" schema apply --tier free --prune --allow-destructive --yes
step "7. The plan for a new Pro tenant, as a mongosh script a reviewer can read or run"
"$caas" tenant add corvid --tier pro --name "Corvid Labs" | sed -n 1p || true
show "grep '^// \\[' | sed -n 1,4p; echo '// ...'" schema plan --tenant corvid --format mongosh
step "8. Least privilege: one role per owning service, derived from the specs"
show "tail -1" roles apply
show "tail -1" roles diff
step "9. Documentation generated from the specs, checked like code"
show "cat" docs --check

cat <<EOF

== What you saw: specs linted and compiled per tier; data seeded into every tier; migrations
   applied once per target; drift caught (diff --exit-code) and repaired (apply); an
   undeclared index held back until --prune --allow-destructive --yes; a mongosh plan; roles
   created and in sync; docs current.
== Try next (scripts/demo.sh --keep-server keeps this data to explore, with mongosh too):
   caas schema plan --tenant corvid     caas schema apply      caas migrate status
   caas docs --out /tmp/caas-docs       caas man | man -l -    caas completions bash
EOF
if $keep && [ -n "${server:-}" ]; then
  echo "== The server keeps running. To explore: export MONGODB_URI='$MONGODB_URI'"
  echo "   (caas is $caas; stop the server with: kill $server)"
fi
