"""The pyspark backend against the shared contract, with a real VectorAssembler + LR pipeline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from modelcore.testing import BackendContract
from modelcore_pyspark import get_spark
from modelcore_pyspark.testing import probability_of_one, transform_pairs

INPUTS = [np.array([0.1, 0.2]), np.array([0.9, 0.8]), np.array([0.5, 0.55])]


class _TrainedPipeline(BackendContract):
    """The trained pipeline of ``conftest.py`` as the contract's model."""

    backend = "pyspark"
    expected_format = "spark-ml"

    @pytest.fixture(autouse=True)
    def _pipeline(self, trained: Any) -> None:
        self.pipeline = trained.v1

    def make_model(self) -> Any:
        return self.pipeline

    def sample_inputs(self) -> list[Any]:
        return list(INPUTS)


class TestPipelineWithFunctionContract(_TrainedPipeline):
    """Clipper's calling convention: ``func(spark, model, inputs)``."""

    def make_func(self) -> Any:
        return probability_of_one

    def expected_outputs(self, inputs: list[Any]) -> list[Any]:
        return probability_of_one(get_spark(), self.pipeline, inputs)


class TestPipelineDefaultPredictContract(_TrainedPipeline):
    """No function: the default predict answers prediction and probability per input."""

    def make_func(self) -> Any:
        return None

    def expected_outputs(self, inputs: list[Any]) -> list[Any]:
        return transform_pairs(get_spark(), self.pipeline, inputs)
