"""What the pytorch backend saves, how it falls back, and what reloads where."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import modelcore
from modelcore.errors import StoreError
from modelcore.store import ModelStore
from modelcore_pytorch import deploy_pytorch_model
from modelcore_pytorch.pickled import EXTRA_FILE, MODULE_FILE, STATE_FILE

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")

X = [np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 0.5])]


class Unscriptable(torch.nn.Module):
    """``**kwargs`` and a dict comprehension: torch.jit.script refuses it."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict(
            {"a": torch.nn.Linear(width, 1), "b": torch.nn.Linear(width, 1)}
        )

    def forward(self, x: torch.Tensor, **kwargs: float) -> torch.Tensor:
        outs = {name: head(x) for name, head in self.heads.items()}
        return torch.cat([outs[name] for name in sorted(outs)], dim=1)


class WithLooseTensors(Unscriptable):
    """Tensors outside the state dict: a non-persistent buffer and a plain attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("offset", torch.tensor([1.0, -1.0]), persistent=False)
        self.scale = torch.tensor(3.0)

    def forward(self, x: torch.Tensor, **kwargs: float) -> torch.Tensor:
        return (super().forward(x) + self.offset) * self.scale


class Tied(Unscriptable):
    def __init__(self) -> None:
        super().__init__()
        self.heads["b"].weight = self.heads["a"].weight


def _load(store: ModelStore, name: str, version: int = 1, device: str = "cpu"):
    pm = modelcore.get_plugin_manager()
    manifest = store.read_manifest(name, version)
    backend = pm.backend(manifest.backend)
    return backend, backend.load(store.local_dir(name, version), manifest, device)


def _live(model: torch.nn.Module, xs) -> list:
    with torch.no_grad():
        return model.eval()(torch.as_tensor(np.stack(xs), dtype=torch.float32)).tolist()


def _write_module(directory: Path, name: str, source: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(textwrap.dedent(source))


USER_CODE = """
    import torch

    class UserMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)
            )
            self.scale = 2.0

        def forward(self, x):
            return self.net(x) * self.scale

    class UserKwargs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x, **kwargs):
            return self.lin(x)
"""

RELOAD = """
import json, sys
import numpy as np
import modelcore

try:
    import user_models_pt
except ImportError:
    pass
else:
    raise SystemExit("the user's module must not be importable here")
store = modelcore.ModelStore(sys.argv[1])
pm = modelcore.get_plugin_manager()
result = {}
for name in ("scripted", "pickled"):
    manifest = store.read_manifest(name, 1)
    backend = pm.backend(manifest.backend)
    try:
        model = backend.load(store.local_dir(name, 1), manifest, "cpu")
        result[name] = backend.predict(model, [np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 0.5])])
    except modelcore.ModelcoreError as exc:
        result[name] = "error: " + exc.message
result["leaked"] = "user_models_pt" in sys.modules
print(json.dumps(result))
"""


def test_torchscript_reloads_where_the_users_class_is_not_importable(tmp_path: Path) -> None:
    code = tmp_path / "usercode"
    _write_module(code, "user_models_pt", USER_CODE)
    store = ModelStore(tmp_path / "store")
    sys.path.insert(0, str(code))
    try:
        user = importlib.import_module("user_models_pt")
        torch.manual_seed(0)
        scripted, pickled = user.UserMLP(), user.UserKwargs()
        deploy_pytorch_model(store, "scripted", None, scripted)
        deploy_pytorch_model(store, "pickled", None, pickled)
        expected = _live(scripted, X)
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("user_models_pt", None)
    assert store.read_manifest("scripted", 1).format == "torchscript"
    assert store.read_manifest("pickled", 1).format == "pickled-module"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run(
        [sys.executable, "-c", RELOAD, str(store.url)],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result["scripted"], expected, rtol=1e-6)
    assert result["leaked"] is False
    # The pickled fallback needs the class (pickled by reference), and says so.
    assert "needs the module 'user_models_pt'" in result["pickled"]


def test_unscriptable_module_falls_back_to_the_pickled_format(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Unscriptable()
    deploy_pytorch_model(tmp_path, "kw", None, model)
    store = ModelStore(tmp_path)
    manifest = store.read_manifest("kw", 1)
    assert manifest.format == "pickled-module"
    assert "torchscript" in manifest.metadata["not_saved_as"]
    assert {f.path for f in manifest.files} == {MODULE_FILE, STATE_FILE}
    backend, loaded = _load(store, "kw")
    np.testing.assert_allclose(backend.predict(loaded, X), _live(model, X), rtol=1e-6)


def test_example_inputs_export_what_torchscript_cannot(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Unscriptable()
    deploy_pytorch_model(tmp_path, "kw", None, model, example_inputs=np.ones((1, 3)))
    store = ModelStore(tmp_path)
    manifest = store.read_manifest("kw", 1)
    assert manifest.format == "torch-export"
    assert manifest.metadata["input_shapes"] == [[3]]
    backend, loaded = _load(store, "kw")
    # Exported with a batch of one, served with other batch sizes.
    for batch in (X[:1], X, X * 3):
        np.testing.assert_allclose(backend.predict(loaded, batch), _live(model, batch), rtol=1e-6)


def test_pickled_weights_load_from_the_state_dict_alone(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Unscriptable(width=1024)
    deploy_pytorch_model(tmp_path, "kw", None, model)
    directory = ModelStore(tmp_path).local_dir("kw", 1)
    state = torch.load(directory / STATE_FILE, weights_only=True)
    assert set(state) == set(model.state_dict())
    # The module pickle refers to the weights instead of holding a second copy.
    assert (directory / MODULE_FILE).stat().st_size < state["heads.a.weight"].nbytes
    torch.save({k: torch.zeros_like(v) for k, v in state.items()}, directory / STATE_FILE)
    backend, loaded = _load(ModelStore(tmp_path), "kw")
    assert backend.predict(loaded, [np.ones(1024)]) == [[0.0, 0.0]]


def test_the_module_pickle_holds_no_tensor_data(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = WithLooseTensors()
    deploy_pytorch_model(tmp_path, "loose", None, model)
    store = ModelStore(tmp_path)
    directory = store.local_dir("loose", 1)
    assert store.read_manifest("loose", 1).metadata["extra_tensors"] == 2
    extra = torch.load(directory / EXTRA_FILE, weights_only=True)
    assert sorted(str(t.tolist()) for t in extra.values()) == ["3.0", "[1.0, -1.0]"]
    # Every tensor went through the weights_only files; none is unpickled from module.pkl.
    assert b"_load_from_bytes" not in (directory / MODULE_FILE).read_bytes()
    backend, loaded = _load(store, "loose")
    np.testing.assert_allclose(backend.predict(loaded, X), _live(model, X), rtol=1e-6)


def test_tied_weights_stay_tied_in_the_pickled_format(tmp_path: Path) -> None:
    deploy_pytorch_model(tmp_path, "tied", None, Tied())
    _, loaded = _load(ModelStore(tmp_path), "tied")
    assert loaded.module.heads["a"].weight is loaded.module.heads["b"].weight


def test_served_in_eval_mode_and_the_users_model_is_left_as_it_was(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 16), torch.nn.Dropout(0.5), torch.nn.Linear(16, 1)
    )
    model.train()

    def probe(m, xs):
        return [[m.training, torch.is_inference_mode_enabled()] for _ in xs]

    deploy_pytorch_model(tmp_path, "drop", None, model)
    deploy_pytorch_model(tmp_path, "drop", probe, model)
    assert model.training
    store = ModelStore(tmp_path)
    backend, loaded = _load(store, "drop", 1)
    first, second = backend.predict(loaded, X), backend.predict(loaded, X)
    assert first == second
    np.testing.assert_allclose(first, _live(model, X), rtol=1e-6)
    backend, loaded = _load(store, "drop", 2)
    assert backend.predict(loaded, X[:1]) == [[False, True]]


def test_a_forced_format_fails_instead_of_falling_back(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"cannot save .*Unscriptable as torchscript"):
        deploy_pytorch_model(tmp_path, "kw", None, Unscriptable(), save_format="torchscript")
    with pytest.raises(StoreError, match="needs example_inputs"):
        deploy_pytorch_model(tmp_path, "kw", None, Unscriptable(), save_format="torch-export")
    with pytest.raises(StoreError, match="unknown save_format 'onnx'"):
        deploy_pytorch_model(tmp_path, "kw", None, Unscriptable(), save_format="onnx")
    assert ModelStore(tmp_path).list_versions("kw") == []
    deploy_pytorch_model(tmp_path, "kw", None, Unscriptable(), save_format="pickled-module")
    assert ModelStore(tmp_path).read_manifest("kw", 1).format == "pickled-module"


def test_unknown_deploy_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown pytorch deploy option"):
        modelcore.deploy(tmp_path, "m", None, model=Unscriptable(), options={"exmaple_inputs": 1})


def test_script_modules_and_exported_programs_are_claimed_and_saved_as_they_are(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 2)).eval()
    scripted = torch.jit.script(mlp)
    program = torch.export.export(mlp, (torch.zeros(2, 3),))
    pm = modelcore.get_plugin_manager()
    assert pm.claim(scripted) == pm.claim(program) == pm.claim(mlp) == "pytorch"
    assert pm.claim(np.zeros(3)) is None
    modelcore.deploy(tmp_path, "s", None, model=scripted)
    modelcore.deploy(tmp_path, "e", None, model=program)
    store = ModelStore(tmp_path)
    assert store.read_manifest("s", 1).format == "torchscript"
    assert store.read_manifest("e", 1).format == "torch-export"
    backend, loaded = _load(store, "s")
    np.testing.assert_allclose(backend.predict(loaded, X), _live(mlp, X), rtol=1e-6)
    backend, loaded = _load(store, "e")
    np.testing.assert_allclose(backend.predict(loaded, X[:1] * 2), _live(mlp, X[:1] * 2))


def test_the_plugin_does_not_import_torch_until_a_hook_needs_it() -> None:
    script = """
import sys
import modelcore_pytorch, modelcore_pytorch.plugin as plugin
pm = __import__("modelcore").get_plugin_manager()
assert "pytorch" in pm.backends()
assert plugin.modelcore_claim(object()) is None
assert pm.claim(object()) != "pytorch"
print("torch" in sys.modules)
"""
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"
