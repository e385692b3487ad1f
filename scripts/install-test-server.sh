#!/usr/bin/env bash
# Install the test MongoDB-wire server (SecantusDB) into the project-local virtualenv.
# Idempotent and safe to run from several processes at once (flock).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${CAAS_VENV:-$root/.venv}"
version="0.7.0b3"
mkdir -p "$(dirname "$venv")"
exec 9>"$venv.lock"
flock 9
if "$venv/bin/python" -c "import secantus" >/dev/null 2>&1; then
  exit 0
fi
echo "installing SecantusDB $version into $venv" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "SecantusDB==$version"
"$venv/bin/python" -c "import secantus" >/dev/null
