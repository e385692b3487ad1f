#!/usr/bin/env bash
# The existing-deployment story: a shop's hand-made MongoDB databases (no caas anywhere),
# adopted with init -> pull --register -> baseline -> audit -> a first migration -> apply.
# Starts a local in-memory SecantusDB unless MONGODB_URI is set; works in a temporary folder.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --quiet
caas="${CARGO_TARGET_DIR:-$PWD/target}/debug/caas"
scripts/install-test-server.sh >/dev/null
py=$PWD/.venv/bin/python
if [ -z "${MONGODB_URI:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  .venv/bin/python -m secantus --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING >/tmp/caas-adopt-server.log 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null' EXIT
  for _ in $(seq 1 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.1; done
  export MONGODB_URI="mongodb://127.0.0.1:$port/?directConnection=true"
fi
work=$(mktemp -d)
cd "$work"
step() { printf '\n== %s\n' "$*"; }
run() { echo "\$ caas $*"; "$caas" "$@"; }

step "0. The shop's databases, made by hand: shared collections, a Pro tenant's set, an Enterprise database"
"$py" - "$MONGODB_URI" <<'PY'
import sys, datetime, pymongo
c = pymongo.MongoClient(sys.argv[1])
now = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc)
shared = c["shop_shared"]
shared.customers.insert_many([
    {"tenant_id": t, "name": n, "email": e, "status": "active", "created_at": now, "updated_at": now}
    for t, n, e in [("corner", "Ada", "ada@corner.example"), ("corner", "Bo", None), ("kiosk", "Cy", "cy@kiosk.example")]
])
shared.orders.insert_many([
    {"tenant_id": "corner", "customer": "Ada", "total_cents": 1250, "lines": [{"sku": "A1", "qty": 2}], "created_at": now, "updated_at": now},
    {"tenant_id": "kiosk", "customer": "Cy", "total_cents": 99.5, "lines": [], "created_at": now, "updated_at": now},
])
shared.orders.create_index([("tenant_id", 1), ("created_at", -1)])
shared.bigco_customers.insert_one({"tenant_id": "bigco", "name": "Di", "email": "di@bigco.example", "status": "active", "created_at": now, "updated_at": now})
shared.bigco_orders.insert_one({"tenant_id": "bigco", "customer": "Di", "total_cents": 5000, "lines": [], "created_at": now, "updated_at": now})
mega = c["shop_megacorp"]
mega.customers.insert_one({"tenant_id": "megacorp", "name": "Ed", "email": None, "status": "active", "created_at": now, "updated_at": now})
mega.orders.insert_one({"tenant_id": "megacorp", "customer": "Ed", "total_cents": 7, "lines": [{"sku": "B2", "qty": 1}], "created_at": now, "updated_at": now})
print("shop_shared: customers, orders, bigco_customers, bigco_orders; shop_megacorp: customers, orders")
PY

step "1. caas init: a project, no example specs; name the shop's databases in caas.toml"
run init --no-examples | tail -1
sed -i 's/^# platform = "caas_platform".*/platform = "shop_platform"/; s/^# shared = "caas_shared".*/shared = "shop_shared"/; s/^# tenant = "caas_{tenant_id}".*/tenant = "shop_{tenant_id}"/' caas.toml
grep -E '^(platform|shared|tenant) =' caas.toml

step "2. caas schema pull --register: specs from the data, tenants from the names, into the registry"
run schema pull --register
run schema lint

step "3. The shop's one hand-run script becomes V0001; caas baseline records it as done everywhere"
cat > migrations/V0001__add_status.yaml <<'YAML'
description: Customers got a status (run by hand before caas).
scope: tenant
up:
  - set_default: { collection: customers, field: status, value: active }
down: []
YAML
run migrate baseline --version 1 --yes
run migrate status

step "4. Tighten a pulled spec by hand (email required, a string), then audit the data against it"
sed -i 's/^  email: .*/  email: { type: string, required: true, max_length: 254 }/' schemas/saas/customers.yaml
grep '^  email:' schemas/saas/customers.yaml
run schema audit --collection customers || echo "(exit $?: documents to migrate first)"

step "5. A first migration gives the customers without an email a placeholder"
cat > migrations/V0002__placeholder_emails.yaml <<'YAML'
description: Customers without an email get unknown@invalid until they tell us.
scope: tenant
bypass_validation: true
up:
  - update_many:
      collection: customers
      filter: { $or: [ { email: null }, { email: { $exists: false } } ] }
      update: { $set: { email: unknown@invalid } }
down: []
YAML
run migrate up | tail -1
run schema audit --collection customers

step "6. Apply: the validators and indexes caas now manages, then a clean diff"
run schema apply --yes | tail -1
run schema diff --exit-code
