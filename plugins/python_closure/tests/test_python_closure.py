"""The python_closure backend against the shared contract, plus what is its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modelcore
from modelcore.errors import StoreError
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore.testing import BackendContract


def _scale_by(factor: float):
    # State captured by the closure must travel with it.
    weights = np.array([factor, 2 * factor])

    def predict(xs):
        return [str(float(np.dot(weights, x))) for x in xs]

    return predict


class TestClosureContract(BackendContract):
    backend = "python_closure"
    expected_format = "cloudpickle"

    def make_func(self):
        return _scale_by(3.0)

    def sample_inputs(self):
        return [np.array([1.0, 2.0]), np.array([0.5, -1.0])]

    def expected_outputs(self, inputs):
        return ["15.0", "-4.5"]


class Affine:
    """A user class pickled by value (cloudpickle), as a scikit-learn model would be."""

    def __init__(self, a: float, b: float):
        self.a, self.b = a, b


class TestClosureWithModelContract(BackendContract):
    backend = "python_closure"
    claims_model = False  # pickling arbitrary objects is opt-in through backend=

    def make_model(self):
        return Affine(2.0, 1.0)

    def make_func(self):
        return lambda model, xs: [model.a * float(x[0]) + model.b for x in xs]

    def sample_inputs(self):
        return [np.array([1.0]), np.array([4.0])]

    def expected_outputs(self, inputs):
        return [3.0, 9.0]


def test_unpicklable_function_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    import threading

    lock = threading.Lock()
    with pytest.raises(StoreError, match="cannot be pickled"):
        modelcore.deploy_python_closure(tmp_path, "locked", lambda xs: [lock.locked() for _ in xs])
    assert ModelStore(tmp_path).list_versions("locked") == []


def test_pkgs_to_install_is_recorded(tmp_path: Path) -> None:
    modelcore.deploy_python_closure(
        tmp_path, "pkgs", lambda xs: xs, pkgs_to_install=["six==1.16.0"]
    )
    assert ModelStore(tmp_path).read_manifest("pkgs", 1).pkgs_to_install == ["six==1.16.0"]


def test_closure_backend_is_found_through_its_entry_point() -> None:
    pm = get_plugin_manager()
    assert pm.statuses["python_closure"].distribution == "modelcore-python"
    assert pm.backend("python_closure").plugin_name == "python_closure"
