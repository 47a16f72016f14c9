#!/usr/bin/env bash
# Set up, then lint, type-check the core, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy (core)"
.venv/bin/mypy
echo "== pytest (mxnet plugin, in .venv-mxnet: numpy 1.23)"
.venv-mxnet/bin/python -m pytest plugins/mxnet "$@"
echo "== pytest"
exec .venv/bin/pytest "$@"
