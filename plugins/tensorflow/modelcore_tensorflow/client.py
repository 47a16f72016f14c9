"""``tensorflow_client`` for Cortex-style Python handlers: JSON payloads in, JSON-ready outputs out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelcore_tensorflow.convert import PayloadError, jsonable
from modelcore_tensorflow.model import TensorFlowModel


class TensorFlowClient:
    """Runs the serving signature of the SavedModels a handler's ``model_client`` serves.

    A handler whose ``__init__`` takes ``tensorflow_client`` receives one::

        class Handler:
            def __init__(self, tensorflow_client, config):
                self.client = tensorflow_client

            def handle_post(self, payload):
                return self.client.predict({"x": payload["rows"]}, model_name="iris")
    """

    def __init__(self, model_client: Any):
        self.model_client = model_client

    def predict(
        self, payload: Any, model_name: str | None = None, model_version: int | str = "latest"
    ) -> dict[str, Any]:
        """Run one request's ``payload`` through a SavedModel's signature.

        ``payload`` is a dict of input name -> nested lists (each a whole batch, as in
        TF Serving's ``inputs`` format), or a bare list when the signature has one
        input. Values are cast to the declared dtypes. Returns ``{output name: list}``.
        A missing or unknown input name, or a value that does not fit, raises
        :class:`~modelcore_tensorflow.convert.PayloadError` (a ``ValueError``).
        """
        model = self.model_client.get_model(model_name, model_version)
        if not isinstance(model, TensorFlowModel):
            raise TypeError(
                f"model {model_name or '(default)'} version {model_version} is a "
                f"{type(model).__name__}, not a TensorFlow SavedModel; "
                "tensorflow_client only calls models served by the tensorflow backend"
            )
        outputs = model.run(_feeds(model, payload))
        return {name: jsonable(array) for name, array in outputs.items()}


def _feeds(model: TensorFlowModel, payload: Any) -> Mapping[str, Any]:
    if isinstance(payload, Mapping):
        return payload
    if len(model.inputs) == 1:
        return {next(iter(model.inputs)): payload}
    raise PayloadError(
        f"the signature {model.signature_name!r} takes several inputs "
        f"({', '.join(repr(n) for n in model.inputs)}); send a JSON object with those keys"
    )
