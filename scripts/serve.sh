#!/usr/bin/env bash
# Set up, deploy the example models into ./models when it is empty, and serve specs/api.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "$(ls -A models 2>/dev/null)" ]; then
    .venv/bin/python examples/deploy_examples.py models
fi
exec .venv/bin/modelcore serve specs/api.yaml "$@"
