"""The plugin from the main environment (numpy 2, no mxnet), and from a user's own mxnet environment.

Runs in any environment. The deploy and serve tests need an mxnet interpreter:
``MODELCORE_MXNET_PYTHON``, else the repository's ``.venv-mxnet/bin/python``;
they skip when there is none.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from modelcore.errors import PluginError
from modelcore.plugins import get_plugin_manager
from modelcore.server import MANAGER, create_app
from modelcore.server.app import STARTUP
from modelcore.spec import parse_spec
from modelcore.store import ModelStore
from modelcore_mxnet.plugin import modelcore_claim
from modelcore_mxnet.testing import mlp_reference, mlp_weights

REPO = Path(__file__).resolve().parents[3]
MXNET_PYTHON = Path(
    os.environ.get("MODELCORE_MXNET_PYTHON", REPO / ".venv-mxnet" / "bin" / "python")
)
needs_mxnet_python = pytest.mark.skipif(
    not MXNET_PYTHON.exists(),
    reason=f"no mxnet environment at {MXNET_PYTHON} (build it as the plugin's README says)",
)


@functools.cache
def _mxnet_importable_here() -> bool:
    # In a subprocess: importing it here would defeat the checks below.
    code = "import mxnet"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_the_plugin_registers_without_importing_mxnet() -> None:
    code = textwrap.dedent(
        """
        import json, sys
        import modelcore_mxnet, modelcore_mxnet.plugin
        from modelcore.plugins import get_plugin_manager
        pm = get_plugin_manager()
        info = pm.backend("mxnet").info
        print(json.dumps({
            "isolation": info.isolation,
            "requirements": list(info.requirements),
            "excluded": list(info.excluded),
            "frameworks": list(info.frameworks),
            "claim": pm.claim(object()),
            "status": pm.statuses["mxnet"].status,
            "distribution": pm.statuses["mxnet"].distribution,
            "imported": [m for m in ("mxnet", "onnx") if m in sys.modules],
        }))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts == {
        "isolation": "process",
        "requirements": ["mxnet==1.9.1", "numpy>=1.23.2,<1.24"],
        "excluded": ["onnx"],
        "frameworks": ["mxnet"],
        "claim": None,
        "status": "ok",
        "distribution": "modelcore-mxnet",
        "imported": [],
    }


def test_claim_leaves_foreign_objects_alone() -> None:
    assert modelcore_claim(object()) is None
    assert modelcore_claim(np.zeros(3)) is None


@pytest.mark.skipif(_mxnet_importable_here(), reason="mxnet imports in this environment")
def test_loading_here_says_where_mxnet_runs(tmp_path: Path) -> None:
    backend = get_plugin_manager().backend("mxnet")
    with pytest.raises(PluginError, match="isolated worker") as info:
        backend.load(tmp_path, None, "cpu")
    assert "mxnet==1.9.1" in info.value.message


DEPLOY_SCRIPT = """
import json, os, sys
import mxnet as mx
import numpy as np
from modelcore_mxnet import deploy_mxnet_model
from modelcore_mxnet.testing import mlp_block, mlp_module, mlp_weights, save_bare_checkpoint

store = sys.argv[1]


def classify(module, inputs):
    scores = module.predict(mx.nd.array(np.stack(inputs))).asnumpy()
    return [json.dumps({"label": int(row.argmax()), "scores": row.tolist()}) for row in scores]


versions = {
    "classifier": deploy_mxnet_model(
        store, "classifier", classify, mlp_module(mlp_weights(1), softmax=True), [("data", (2, 3))]
    ),
    "net": deploy_mxnet_model(store, "net", None, mlp_block(mlp_weights(2)), [("data", (1, 3))]),
}
# A training script's own checkpoint, dropped into the store without a manifest.
os.makedirs(f"{store}/bare/1")
save_bare_checkpoint(mlp_weights(3), f"{store}/bare/1/mlp", epoch=5)
print(json.dumps({"versions": versions, "numpy": np.__version__}))
"""


@pytest.fixture(scope="module")
def user_deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store that a user's own mxnet environment deployed two models into."""
    if not MXNET_PYTHON.exists():
        pytest.skip(f"no mxnet environment at {MXNET_PYTHON}")
    work = tmp_path_factory.mktemp("user")
    (work / "deploy.py").write_text(DEPLOY_SCRIPT)
    store = work / "models"
    env = {**os.environ, "MXNET_SUBGRAPH_VERBOSE": "0", "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [str(MXNET_PYTHON), "deploy.py", str(store)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts["versions"] == {"classifier": 1, "net": 1}
    assert facts["numpy"].startswith("1.23.")
    return store


@pytest.mark.slow
@needs_mxnet_python
def test_deploying_from_a_users_mxnet_environment(user_deployed: Path) -> None:
    store = ModelStore(user_deployed)
    classifier = store.read_manifest("classifier", 1)
    assert (classifier.backend, classifier.format) == ("mxnet", "mxnet-checkpoint")
    assert classifier.frameworks == {"mxnet": "1.9.1"}
    assert classifier.has_function and classifier.metadata["mxnet"]["api"] == "module"
    assert {f.path for f in classifier.files} == {
        "model-symbol.json",
        "model-0000.params",
        "func.pkl",
    }
    net = store.read_manifest("net", 1)
    assert net.frameworks == {"mxnet": "1.9.1"} and not net.has_function
    assert net.metadata["mxnet"]["api"] == "gluon"


@pytest.mark.slow
@needs_mxnet_python
async def test_serving_from_this_environment_through_a_worker(
    aiohttp_client, user_deployed: Path, tmp_path: Path
) -> None:
    worker = f"environment: {{python: {MXNET_PYTHON}}}"
    spec = (
        f"store: {user_deployed}\napis:\n"
        f"  - {{name: classify, model: classifier, {worker}}}\n"
        f"  - {{name: score, model: net, input_type: floats, {worker}}}\n"
        f"  - {{name: bare, model: bare, backend: mxnet, {worker}}}\n"
    )
    app = create_app(parse_spec(spec, str(tmp_path / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 120)
    xs = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]
    resp = await client.post("/classify/predict", json={"input_batch": xs})
    body = await resp.json()
    assert resp.status == 200, body
    want = mlp_reference(mlp_weights(1), xs, softmax=True)
    for row, prediction in zip(want, body["batch_predictions"], strict=True):
        assert prediction["output"]["label"] == int(row.argmax())
        np.testing.assert_allclose(prediction["output"]["scores"], row, rtol=1e-5)
    resp = await client.post("/score/predict", json={"input": xs[0]})
    body = await resp.json()
    assert resp.status == 200, body
    np.testing.assert_allclose(body["output"], mlp_reference(mlp_weights(2), xs[:1])[0], rtol=1e-5)
    resp = await client.post("/bare/predict", json={"input_batch": xs})
    body = await resp.json()
    assert resp.status == 200, body
    outputs = [p["output"] for p in body["batch_predictions"]]
    np.testing.assert_allclose(outputs, mlp_reference(mlp_weights(3), xs), rtol=1e-5, atol=1e-6)
    if not _mxnet_importable_here():
        assert "mxnet" not in sys.modules, "the server process itself never imports mxnet"


@pytest.mark.slow
@needs_mxnet_python
async def test_serving_builds_the_worker_environment_from_the_backend_requirements(
    aiohttp_client, user_deployed: Path, tmp_path: Path
) -> None:
    """No environment in the spec: the server builds one from the backend's declared needs."""
    spec = f"store: {user_deployed}\napis:\n  - {{name: score, model: net, input_type: floats}}\n"
    app = create_app(parse_spec(spec, str(tmp_path / "spec.yaml")), pm=get_plugin_manager())
    client = await aiohttp_client(app)
    await asyncio.wait_for(asyncio.shield(app[STARTUP]), 900)  # a cold build installs mxnet
    xs = [[1.0, -2.0, 0.5]]
    resp = await client.post("/score/predict", json={"input": xs[0]})
    body = await resp.json()
    assert resp.status == 200, body
    np.testing.assert_allclose(body["output"], mlp_reference(mlp_weights(2), xs)[0], rtol=1e-5)
    status = app[MANAGER].model_status("net")["versions"][0]
    assert status["state"] == "ready" and len(status["workers"]) == 1
    if not _mxnet_importable_here():
        assert "mxnet" not in sys.modules
