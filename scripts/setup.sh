#!/usr/bin/env bash
# Create .venv at the repository root with the core and every plugin installed editable.
# Re-running is cheap: nothing is reinstalled while no pyproject.toml has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Plugins that cannot share the main environment (they run in their own worker environments).
SEPARATE_ENV_PLUGINS=" mxnet "

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
echo "$want" > "$stamp"
