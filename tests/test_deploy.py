from __future__ import annotations

import platform
from pathlib import Path

import cloudpickle
import numpy as np
import pytest

import modelcore
from modelcore.closure import load_function
from modelcore.errors import BadRequest, IncompatibleArtifact, PluginError
from modelcore.store import ModelStore


def test_deployed_closure_keeps_its_state_and_metadata(store_dir: Path) -> None:
    offset = 41
    v = modelcore.deploy_python_closure(
        store_dir, "add", lambda xs: [x[0] + offset for x in xs], metadata={"owner": "team-a"}
    )
    store = ModelStore(store_dir)
    manifest = store.read_manifest("add", v)
    assert manifest.backend == "python_closure"
    assert manifest.python_version == platform.python_version()
    assert manifest.cloudpickle_version == cloudpickle.__version__
    assert manifest.metadata == {"owner": "team-a"}
    assert manifest.has_function and [f.path for f in manifest.files] == ["func.pkl"]
    func = load_function(store.local_dir("add", v), manifest)
    assert func([np.array([1.0])]) == [42.0]


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("python_version", "3.9.18", "pickled by Python 3.9.18"),
        ("cloudpickle_version", "1.6.0", "pickled by cloudpickle 1.6.0"),
    ],
)
def test_closure_from_another_python_or_cloudpickle_names_both_versions(
    store_dir, field, value, needle
):
    modelcore.deploy_python_closure(store_dir, "old", lambda xs: xs)
    store = ModelStore(store_dir)
    manifest = store.read_manifest("old", 1).model_copy(update={field: value})
    with pytest.raises(IncompatibleArtifact) as info:
        load_function(store.local_dir("old", 1), manifest)
    here = platform.python_version() if field == "python_version" else cloudpickle.__version__
    assert needle in info.value.message and here in info.value.message


def test_unknown_input_type_and_unclaimed_model(store_dir: Path) -> None:
    with pytest.raises(BadRequest, match="unknown input_type 'tensor'"):
        modelcore.deploy_python_closure(store_dir, "m", lambda xs: xs, input_type="tensor")

    class Opaque:
        pass

    with pytest.raises(PluginError, match="no installed backend can save a"):
        modelcore.deploy(store_dir, "m", lambda m, xs: xs, model=Opaque())
    with pytest.raises(PluginError, match="no backend named 'nosuch'"):
        modelcore.deploy(store_dir, "m", lambda xs: xs, backend="nosuch")
    assert ModelStore(store_dir).list_versions("m") == []


def test_functions_from_the_users_own_modules_are_saved_by_value(store_dir: Path, tmp_path) -> None:
    """A function from a script module is loadable where that module does not exist."""
    import subprocess
    import sys

    (tmp_path / "mytransforms.py").write_text(
        "def triple(xs):\n    return [3 * x[0] for x in xs]\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        import mytransforms

        modelcore.deploy_python_closure(store_dir, "t", mytransforms.triple)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mytransforms", None)
    code = (
        "import sys, numpy as np; from modelcore.closure import load_function; "
        f"f = load_function({str(store_dir / 't' / '1')!r}); print(f([np.array([2.0])]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "[np.float64(6.0)]", out.stderr
