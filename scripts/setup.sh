#!/usr/bin/env bash
# Create .venv at the repository root with the core and every plugin installed editable.
# Re-running is cheap: nothing is reinstalled while no pyproject.toml has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Plugins whose framework cannot share the main environment are still installed there (their
# packages import no framework); the framework lives in a worker environment (MXNet: .venv-mxnet).
SEPARATE_ENV_PLUGINS=""

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi

plugins=()
for dir in plugins/*/; do
    name=$(basename "$dir")
    [ -f "$dir/pyproject.toml" ] || continue
    case "$SEPARATE_ENV_PLUGINS" in *" $name "*) continue ;; esac
    plugins+=("-e" "${dir%/}[test]")
done

stamp=.venv/.modelcore-setup
want=$(cat pyproject.toml plugins/*/pyproject.toml constraints.txt scripts/setup.sh 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

# pip's own failures fail the script; only this machine's index warnings are filtered out.
quiet_pip() { "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }

echo "setup: installing modelcore and plugins into .venv (this takes a while the first time)"
quiet_pip .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
# constraints.txt pins torch: an unpinned torch pulls several GB of CUDA packages.
quiet_pip .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt \
    -e ".[dev,fast,watch,s3]" "${plugins[@]}"
.venv/bin/python -c "import modelcore, modelcore_python" # fail loudly if the install did not take

# moto[server] pins a botocore that s3fs's aiobotocore refuses: the tests' local S3 server
# runs from its own environment.
if [ ! -x .venv-moto/bin/moto_server ]; then
    echo "setup: creating .venv-moto for the tests' local S3 server"
    "$PYTHON" -m venv .venv-moto
    quiet_pip .venv-moto/bin/python -m pip install -q --disable-pip-version-check "moto[server]"
    test -x .venv-moto/bin/moto_server
fi
# MXNet 1.9.1 needs numpy<1.24: its tests (and deploying an mxnet model) run in .venv-mxnet.
# No onnx there: `import mxnet` imports onnx when present and breaks on a numpy-2 onnx.
# Installed again whenever a pyproject.toml changed (as .venv is): the core's dependencies live
# there too, and a stale environment fails only at import time.
if [ ! -x .venv-mxnet/bin/python ]; then
    echo "setup: creating .venv-mxnet (mxnet 1.9.1, numpy 1.23)"
    "$PYTHON" -m venv .venv-mxnet
fi
echo "setup: installing modelcore and the mxnet plugin into .venv-mxnet"
quiet_pip .venv-mxnet/bin/python -m pip install -q --disable-pip-version-check \
    -e . -e "plugins/mxnet[framework,test]"
.venv-mxnet/bin/python -c "import mxnet, modelcore_mxnet, numpy; assert numpy.__version__.startswith('1.23')"
echo "$want" > "$stamp"
