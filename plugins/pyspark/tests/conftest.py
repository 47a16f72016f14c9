"""Fixtures for the pyspark plugin's tests: ONE SparkSession per run, pipelines trained once.

Spark is slow to start and to fit, so every test shares the process's session
(the plugin's own singleton) and the two pipelines trained here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from modelcore.plugins import set_plugin_manager
from modelcore_pyspark import get_spark, stop_spark

# Python workers (UDFs in user functions) must run this interpreter.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@dataclass(frozen=True)
class Trained:
    """Two fitted VectorAssembler(a, b) + LogisticRegression pipelines."""

    v1: Any  # label 1 when a + b is large
    v2: Any  # trained on the flipped labels: the opposite answers

    @property
    def classifier(self) -> Any:
        """v1's LogisticRegressionModel alone (it reads a ``features`` vector column)."""
        return self.v1.stages[-1]


@pytest.fixture(autouse=True)
def _fresh_plugin_manager() -> Iterator[None]:
    set_plugin_manager(None)
    yield
    set_plugin_manager(None)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    session = get_spark()
    yield session
    stop_spark()


@pytest.fixture(scope="session")
def trained(spark: Any) -> Trained:
    from modelcore_pyspark.testing import flipped, train_pipeline

    return Trained(v1=train_pipeline(spark), v2=train_pipeline(spark, flipped()))
