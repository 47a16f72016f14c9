"""Clipper's PySpark deployer: a predict function plus a fitted Spark ML model or pipeline."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from modelcore.deploy import deploy
from modelcore.store import ModelStore

BACKEND = "pyspark"

PredictFunc = Callable[[Any, Any, list[Any]], list[Any]]


def deploy_pyspark_model(
    store: str | os.PathLike[str] | ModelStore,
    name: str,
    func: PredictFunc | None,
    pyspark_model: Any,
    sc: Any = None,
    *,
    version: int | None = None,
    input_type: str = "doubles",
    pkgs_to_install: Sequence[str] | None = None,
    metadata: dict[str, Any] | None = None,
    warmup_inputs: Sequence[Any] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> int:
    """Deploy a fitted ``pyspark.ml`` model or ``PipelineModel``; return the new version.

    The model is saved with its native ML writer. ``func(spark, model,
    inputs)`` receives the server's SparkSession, the loaded model and the
    list of inputs, and returns a list as long; with ``func=None`` the default
    predict answers ``{"prediction": ..., "probability": [...]}`` per input.
    ``sc`` (the current SparkContext) is accepted for Clipper compatibility
    and not needed: the ML writer finds the active session itself.
    ``warmup_inputs`` (request inputs as JSON values) are predicted once after
    each load, so the first ``transform`` is paid before the version serves.
    """
    del sc  # Clipper needed it to save; the native writer does not
    return deploy(
        store,
        name,
        func,
        model=pyspark_model,
        backend=BACKEND,
        version=version,
        input_type=input_type,
        pkgs_to_install=pkgs_to_install,
        metadata=metadata,
        warmup_inputs=warmup_inputs,
        storage_options=storage_options,
    )
