"""modelcore backend for Spark ML models and pipelines, served from one long-lived SparkSession.

Importing this package does not import pyspark.
"""

from modelcore_pyspark.deploy import deploy_pyspark_model
from modelcore_pyspark.session import get_spark, spark_started, stop_spark

__all__ = ["deploy_pyspark_model", "get_spark", "spark_started", "stop_spark"]
