"""A loaded SavedModel: its serving signature, its device, and the user's predict function."""

from __future__ import annotations

import gc
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelcore.errors import PluginError, StoreError
from modelcore_tensorflow.convert import PayloadError, to_tensor
from modelcore_tensorflow.signature import DEFAULT_SIGNATURE


class TensorFlowModel:
    """What the ``tensorflow`` backend loads, and what a predict function receives as ``model``.

    ``func(model, inputs)`` gets this object. It holds:

    * ``module``: the object ``tf.saved_model.load`` returned (its ``signatures``,
      restored ``tf.function`` methods and variables);
    * ``signature``: the serving signature, a concrete function taking tensors by name
      and returning a dict of output tensors;
    * ``inputs`` / ``outputs``: the signature's ``tf.TensorSpec`` by name;
    * ``device``: ``"/CPU:0"`` or ``"/GPU:N"``, where the variables live and the signature runs.

    Calling it runs the signature on one batch (see :meth:`__call__`).
    """

    def __init__(
        self,
        path: Path,
        *,
        device: str = "/CPU:0",
        func: Callable[..., Any] | None = None,
        signature_name: str = DEFAULT_SIGNATURE,
    ):
        self.path = path
        self.func = func
        self.signature_name = signature_name
        self.device = device
        self.module: Any = None
        self.signature: Any = None
        self.inputs: dict[str, Any] = {}
        self.outputs: dict[str, Any] = {}
        self._restore(device)

    def __repr__(self) -> str:
        return f"<TensorFlowModel {self.path} {self.signature_name} on {self.device}>"

    def _restore(self, device: str) -> None:
        import tensorflow as tf

        try:
            # Variables are created under the device scope active while they are restored.
            with tf.device(device):
                module = tf.saved_model.load(str(self.path))
        except Exception as exc:
            raise StoreError(
                f"{self.path}: TensorFlow cannot load this SavedModel",
                cause=f"{type(exc).__name__}: {exc}",
            ) from exc
        signatures = getattr(module, "signatures", {})
        if self.signature_name not in signatures:
            if self.signature_name != DEFAULT_SIGNATURE or len(signatures) != 1:
                raise StoreError(
                    f"{self.path}: no signature {self.signature_name!r} "
                    f"(it has: {', '.join(sorted(signatures)) or 'none'})"
                )
            # A bare SavedModel exported with one signature under another name.
            self.signature_name = next(iter(signatures))
        signature = signatures[self.signature_name]
        self.inputs = dict(signature.structured_input_signature[1])
        self.outputs = dict(signature.structured_outputs)
        self.module, self.signature, self.device = module, signature, device

    def move_to(self, device: str) -> None:
        """Restore the variables on ``device`` (a TensorFlow device string) and run there from now on.

        A restored variable cannot change device, so the SavedModel is read again there;
        the old copy is freed with the last reference to it.
        """
        if device != self.device:
            self._check_loaded()
            self._restore(device)
            gc.collect()

    def run(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Run the signature on tensors by input name; return every output as a numpy array.

        Values are cast to the declared dtypes; a missing or unknown name, or a shape
        that does not fit, raises :class:`PayloadError` (a ``ValueError``).
        """
        import tensorflow as tf

        self._check_loaded()
        missing = sorted(set(self.inputs) - set(feeds))
        unknown = sorted(set(feeds) - set(self.inputs))
        if missing or unknown:
            problems = [f"missing {_names(missing)}"] if missing else []
            problems += [f"unknown {_names(unknown)}"] if unknown else []
            raise PayloadError(
                f"inputs do not match the signature {self.signature_name!r}: "
                f"{'; '.join(problems)} (it takes {_names(sorted(self.inputs))})"
            )
        tensors = {name: to_tensor(feeds[name], self.inputs[name], name) for name in self.inputs}
        with tf.device(self.device):
            results = self.signature(**tensors)
        return {name: tensor.numpy() for name, tensor in results.items()}

    def __call__(self, batch: Any = None, /, **named: Any) -> Any:
        """Run the signature on one batch.

        ``model(x)`` feeds a one-input signature; ``model({"a": xa, "b": xb})`` or
        ``model(a=xa, b=xb)`` feed several inputs. Values may be numpy arrays, nested
        lists or tensors and are cast to the declared dtypes. Returns a numpy array when
        the signature has one output, else a dict of arrays by output name.
        """
        if isinstance(batch, Mapping):
            feeds = dict(batch)
        elif batch is None:
            feeds = named
        elif len(self.inputs) == 1:
            feeds = {next(iter(self.inputs)): batch}
        else:
            raise PayloadError(
                f"the signature takes several inputs ({_names(sorted(self.inputs))}): "
                "pass them by name"
            )
        outputs = self.run(feeds)
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def release(self) -> None:
        """Drop the restored variables and functions, and collect them now.

        The variables' buffers are freed when their last reference dies; the restored
        SavedModel graph holds reference cycles, hence the explicit ``gc.collect()``.
        """
        self.module = self.signature = self.func = None
        gc.collect()

    def _check_loaded(self) -> None:
        if self.signature is None:
            raise PluginError(f"{self.path}: this model was unloaded")


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)
