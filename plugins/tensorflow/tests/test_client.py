"""tensorflow_client: JSON payloads onto a real loaded SavedModel's signature, and the handler hook."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore_tensorflow import TensorFlowClient, deploy_tensorflow_model


class ModelClient:
    """The smallest model client: the backend's real loaded models, by name and version."""

    def __init__(self, store: ModelStore, names: list[str]):
        backend = get_plugin_manager().backend("tensorflow")
        self.models = {
            name: backend.load(store.local_dir(name, 1), store.read_manifest(name, 1), "cpu")
            for name in names
        }
        self.asked: list[tuple[Any, Any]] = []

    def get_model(self, name: str | None, version: int | str) -> Any:
        self.asked.append((name, version))
        return self.models[name or "dense"]


@pytest.fixture(scope="module")
def model_client(tmp_path_factory: pytest.TempPathFactory, models) -> ModelClient:
    store = ModelStore(tmp_path_factory.mktemp("client"))
    deploy_tensorflow_model(store, "dense", None, models.dense())
    mixed = models.mixed()
    deploy_tensorflow_model(store, "mixed", None, mixed, signatures=mixed.f)
    client = ModelClient(store, ["dense", "mixed"])
    client.models["closure"] = "not a SavedModel"
    return client


def test_a_bare_list_feeds_a_one_input_signature(model_client: ModelClient, models) -> None:
    client = TensorFlowClient(model_client)
    rows = [[1, 2, 3], [0, 0, 1]]  # JSON integers, cast to the declared float32
    out = client.predict(rows)
    assert model_client.asked[-1] == (None, "latest")
    assert list(out) == ["output_0"]
    assert isinstance(out["output_0"], list) and isinstance(out["output_0"][0][0], float)
    np.testing.assert_allclose(out["output_0"], models.dense_expected(rows))
    assert client.predict({"x": rows}, model_name="dense", model_version=1) == out
    assert model_client.asked[-1] == ("dense", 1)


def test_named_inputs_and_outputs_are_json_ready(model_client: ModelClient) -> None:
    client = TensorFlowClient(model_client)
    out = client.predict({"a": [[1.5, 2], [3, 4]], "label": ["ann", "bob"]}, model_name="mixed")
    assert out == {"total": [3.5, 7.0], "greeting": ["hi ann", "hi bob"]}


def test_missing_and_unknown_inputs_are_named(model_client: ModelClient) -> None:
    client = TensorFlowClient(model_client)
    with pytest.raises(
        ValueError, match=r"missing 'label'; unknown 'lbl' \(it takes 'a', 'label'\)"
    ):
        client.predict({"a": [[1, 2]], "lbl": ["x"]}, model_name="mixed")
    with pytest.raises(ValueError, match=r"takes several inputs .* send a JSON object"):
        client.predict([[1, 2]], model_name="mixed")
    with pytest.raises(ValueError, match=r"input 'x': shape \(3,\) does not fit .* \(None, 3\)"):
        client.predict([1, 2, 3], model_name="dense")
    with pytest.raises(ValueError, match="input 'a': cannot convert the value to float32"):
        client.predict({"a": [["one", "two"]], "label": ["x"]}, model_name="mixed")
    with pytest.raises(TypeError, match="only calls models served by the tensorflow backend"):
        client.predict([1.0], model_name="closure")


def test_handler_arguments_hook_offers_tensorflow_client(model_client: ModelClient) -> None:
    offered: dict[str, Any] = {}
    for answer in get_plugin_manager().hook.modelcore_handler_arguments(model_client=model_client):
        offered.update(answer or {})
    client = offered["tensorflow_client"]
    assert isinstance(client, TensorFlowClient) and client.model_client is model_client
    assert client.predict({"a": [[1, 1]], "label": ["x"]}, model_name="mixed")["total"] == [2.0]
