#!/usr/bin/env bash
# Check that each framework plugin installs and passes its tests ALONE: a fresh venv with only
# the core and that one plugin (and its test extras). Slow (one venv per plugin); not in CI.
#   scripts/check_alone.sh [plugin ...]     default: pytorch onnx_caffe2 tensorflow pyspark
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
plugins=("$@")
[ ${#plugins[@]} -gt 0 ] || plugins=(pytorch onnx_caffe2 tensorflow pyspark)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for plugin in "${plugins[@]}"; do
    env="$work/$plugin"
    echo "== $plugin: fresh venv with modelcore + plugins/$plugin only"
    "$PYTHON" -m venv "$env"
    "$env/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt \
        -e ".[dev]" -e "plugins/$plugin[test]" 2>&1 | { grep -v "is ignored: it is neither" || true; }
    "$env/bin/python" -m modelcore plugins
    if ! "$env/bin/python" -m pytest -q -p no:cacheprovider "plugins/$plugin"; then
        echo "== $plugin: FAILED alone"
        status=1
    fi
done
exit $status
