"""What is particular to the pyspark backend: the shared session, saving, bare folders, defaults."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import modelcore
from modelcore.errors import BadRequest, LoadError, PluginError, PredictionError, StoreError
from modelcore.plugins import get_plugin_manager
from modelcore.store import ModelStore
from modelcore.testing import assert_outputs_close
from modelcore_pyspark import deploy_pyspark_model, get_spark, spark_started
from modelcore_pyspark import session as session_module
from modelcore_pyspark.model import SparkModel
from modelcore_pyspark.model_io import python_class_name
from modelcore_pyspark.session import session_conf
from modelcore_pyspark.testing import probability_of_one, transform_pairs

PAIRS = [[0.1, 0.2], [0.9, 0.8], [0.5, 0.55], [0.0, 1.0]]


def _load(store: ModelStore, name: str, version: int = 1, device: str = "cpu") -> SparkModel:
    manifest = store.read_manifest(name, version)
    backend = get_plugin_manager().backend("pyspark")
    return backend.load(store.local_dir(name, version), manifest, device)


def _load_bare(directory: Path, device: str = "cpu") -> SparkModel:
    return get_plugin_manager().backend("pyspark").load(directory, None, device)


def _seen_by_function(spark, model, inputs):
    # What the function receives: the shared session, the loaded pipeline, the raw inputs.
    return [
        json.dumps([type(spark).__name__, type(model).__name__, len(model.stages), x.tolist()])
        for x in inputs
    ]


# -- deploy and save ----------------------------------------------------------------------


def test_the_function_gets_the_session_the_model_and_the_inputs(
    tmp_path: Path, trained: Any
) -> None:
    store = ModelStore(tmp_path)
    assert deploy_pyspark_model(store, "seen", _seen_by_function, trained.v1) == 1
    model = _load(store, "seen")
    assert model.spark is get_spark()
    answers = [json.loads(a) for a in model.predict([np.array(p) for p in PAIRS[:2]])]
    assert answers == [
        ["SparkSession", "PipelineModel", 2, PAIRS[0]],
        ["SparkSession", "PipelineModel", 2, PAIRS[1]],
    ]


def test_the_manifest_records_the_class_and_the_native_save(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "pipe", probability_of_one, trained.v1, sc=get_spark().sparkContext)
    manifest = store.read_manifest("pipe", 1)
    assert manifest.backend == "pyspark" and manifest.format == "spark-ml"
    assert manifest.frameworks["pyspark"]
    facts = manifest.metadata["pyspark"]
    assert facts["class"] == "pyspark.ml.pipeline.PipelineModel"
    assert facts["path"] == "spark_model" and facts["uid"] == trained.v1.uid
    assert facts["stages"] == [
        "pyspark.ml.feature.VectorAssembler",
        "pyspark.ml.classification.LogisticRegressionModel",
    ]
    directory = store.local_dir("pipe", 1)
    assert (directory / "spark_model" / "metadata").is_dir()
    assert not list(directory.rglob("*.crc")), "Hadoop checksum files should not be published"


def test_a_single_fitted_model_is_deployed_and_predicts(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "lr", None, trained.classifier)
    facts = store.read_manifest("lr", 1).metadata["pyspark"]
    assert facts["class"] == "pyspark.ml.classification.LogisticRegressionModel"
    model = _load(store, "lr")
    # A lone classifier reads its feature vector column: each input vector fills it.
    assert_outputs_close(
        model.predict([np.array(p) for p in PAIRS]), transform_pairs(get_spark(), trained.v1, PAIRS)
    )


def test_generic_deploy_claims_spark_models_only(tmp_path: Path, trained: Any, spark: Any) -> None:
    pm = get_plugin_manager()
    assert pm.claim(trained.v1) == "pyspark"
    assert pm.claim(trained.classifier) == "pyspark"
    frame = spark.createDataFrame([(1.0,)], ["x"])
    assert pm.claim(frame) != "pyspark"  # a DataFrame has .write too, but is no ML model
    version = modelcore.deploy(tmp_path, "generic", probability_of_one, model=trained.v1)
    assert ModelStore(tmp_path).read_manifest("generic", version).backend == "pyspark"


def test_an_unfitted_estimator_is_refused(tmp_path: Path, spark: Any) -> None:
    from pyspark.ml.classification import LogisticRegression

    with pytest.raises(PluginError, match="estimator, not a fitted model"):
        deploy_pyspark_model(tmp_path, "unfitted", None, LogisticRegression())
    assert ModelStore(tmp_path).list_versions("unfitted") == []


# -- the shared session ------------------------------------------------------------------


def test_two_models_share_one_session(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "one", probability_of_one, trained.v1)
    deploy_pyspark_model(store, "two", probability_of_one, trained.v2)
    first, second = _load(store, "one"), _load(store, "two")
    assert first.spark is second.spark is get_spark()
    assert first.spark.sparkContext is second.spark.sparkContext
    x = [np.array([0.9, 0.8])]
    assert first.predict(x)[0] > 0.5 > second.predict(x)[0]


def test_the_session_is_ready_at_load_and_requests_never_start_one(
    tmp_path: Path, trained: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "warm", None, trained.v1)
    model = _load(store, "warm")
    # Right after load, before any request: the session is up, warmed, and held by the model.
    assert spark_started() and model.spark is get_spark()

    def no_session_start(*args: Any) -> Any:
        raise AssertionError("a request reached the session start-up")

    monkeypatch.setattr(session_module, "get_spark", no_session_start)
    monkeypatch.setattr(session_module, "_start_session", no_session_start)
    monkeypatch.setattr(session_module, "_warm_up", no_session_start)
    answers = model.predict([np.array(p) for p in PAIRS])
    assert [a["prediction"] for a in answers] == [0.0, 1.0, 1.0, 0.0]


def test_get_spark_from_many_threads_returns_one_session(spark: Any) -> None:
    seen: list[Any] = []
    threads = [threading.Thread(target=lambda: seen.append(get_spark())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 4 and all(s is spark for s in seen)


def test_unload_drops_the_model_and_keeps_the_session(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "gone", probability_of_one, trained.v1)
    model = _load(store, "gone")
    assert get_plugin_manager().backend("pyspark").unload(model) is True
    with pytest.raises(PredictionError, match="unloaded"):
        model.predict([np.array([0.1, 0.2])])
    assert spark_started()


def test_session_conf_defaults_stay_on_loopback_and_env_overrides() -> None:
    conf = session_conf({})
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    assert conf["spark.ui.enabled"] == "false" and conf["spark.master"] == "local[2]"
    conf = session_conf({"MODELCORE_SPARK_CONF": "spark.master=local[4], spark.driver.memory=2g"})
    assert conf["spark.master"] == "local[4]" and conf["spark.driver.memory"] == "2g"
    with pytest.raises(LoadError, match="key=value"):
        session_conf({"MODELCORE_SPARK_CONF": "nonsense"})


# -- devices -----------------------------------------------------------------------------


def test_cpu_and_auto_load_and_a_gpu_is_refused(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "dev", probability_of_one, trained.v1)
    assert _load(store, "dev", device="auto").predict([np.array([0.9, 0.8])])[0] > 0.5
    with pytest.raises(LoadError, match="run on the CPU"):
        _load(store, "dev", device="cuda:0")


# -- the default predict -----------------------------------------------------------------


def test_default_predict_keeps_input_order_in_a_larger_batch(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "order", None, trained.v1)
    model = _load(store, "order")
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=40)
    # Far from the decision boundary: small pairs are class 0, large ones class 1.
    pairs = [
        rng.uniform(0.6, 1.0, 2).tolist() if y else rng.uniform(0.0, 0.3, 2).tolist()
        for y in labels
    ]
    answers = model.predict([np.array(p) for p in pairs])
    assert_outputs_close(answers, transform_pairs(get_spark(), trained.v1, pairs))
    assert [a["prediction"] for a in answers] == [float(y) for y in labels]
    assert all(set(a) == {"prediction", "probability"} for a in answers)
    assert model.predict([]) == []


def test_default_predict_takes_dicts_and_json_objects(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "dicts", None, trained.v1)
    model = _load(store, "dicts")
    expected = transform_pairs(get_spark(), trained.v1, [*PAIRS[:3], [1.0, 0.0]])
    inputs = [
        {"a": 0.1, "b": 0.2},
        {"b": np.float64(0.8), "a": 0.9, "unused": "extra columns pass through"},
        json.dumps({"a": 0.5, "b": 0.55}),
        {"a": 1, "b": np.int64(0)},  # integers become doubles
    ]
    assert_outputs_close(model.predict(inputs), expected)


def test_default_predict_explains_inputs_it_cannot_use(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "bad", None, trained.v1)
    model = _load(store, "bad")
    with pytest.raises(BadRequest, match="VectorAssembler reads 2 columns"):
        model.predict([np.array([1.0, 2.0, 3.0])])
    with pytest.raises(BadRequest, match="mixes"):
        model.predict([np.array([1.0, 2.0]), {"a": 1.0, "b": 2.0}])
    with pytest.raises(BadRequest, match="plain string"):
        model.predict(["hello"])


def test_default_predict_needs_a_prediction_column(tmp_path: Path, trained: Any) -> None:
    store = ModelStore(tmp_path)
    deploy_pyspark_model(store, "assembler", None, trained.v1.stages[0])
    model = _load(store, "assembler")
    with pytest.raises(PredictionError, match="'prediction' column"):
        model.predict([np.array([1.0, 2.0])])


# -- bare folders and the class restriction ----------------------------------------------------


def test_bare_native_saves_load_with_the_class_their_metadata_names(
    tmp_path: Path, trained: Any
) -> None:
    direct, nested = tmp_path / "direct", tmp_path / "nested"
    trained.v1.write().save(str(direct))
    trained.v2.write().save(str(nested / "spark_model"))
    first, second = _load_bare(direct), _load_bare(nested)
    assert first.class_name == second.class_name == "pyspark.ml.PipelineModel"
    assert first.func is None
    x = [np.array([0.9, 0.8])]
    assert first.predict(x)[0]["prediction"] == 1.0
    assert second.predict(x)[0]["prediction"] == 0.0


def test_classes_outside_pyspark_ml_are_never_imported(tmp_path: Path) -> None:
    folder = tmp_path / "evil" / "metadata"
    folder.mkdir(parents=True)
    (folder / "part-00000").write_text(json.dumps({"class": "os.system", "uid": "x"}) + "\n")
    with pytest.raises(LoadError, match=r"only classes of pyspark\.ml"):
        _load_bare(tmp_path / "evil")
    (folder / "part-00000").write_text(json.dumps({"class": "pyspark.mlx.Thing"}) + "\n")
    with pytest.raises(LoadError, match=r"only classes of pyspark\.ml"):
        _load_bare(tmp_path / "evil")
    (folder / "part-00000").write_text(json.dumps({"class": "pyspark.ml.linalg.Vectors"}) + "\n")
    with pytest.raises(LoadError, match="not a Spark ML class that can read"):
        _load_bare(tmp_path / "evil")


def test_a_nested_stage_outside_pyspark_ml_is_refused(tmp_path: Path, trained: Any) -> None:
    save = tmp_path / "tampered"
    trained.v1.write().save(str(save))
    (part,) = (save / "stages").glob("1_*/metadata/part-*")
    facts = json.loads(part.read_text().splitlines()[0])
    part.write_text(json.dumps({**facts, "class": "subprocess.Popen"}) + "\n")
    with pytest.raises(LoadError, match=r"stages/1_.*names the class 'subprocess\.Popen'"):
        _load_bare(save)


def test_a_folder_without_a_spark_save_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="not a Spark ML model save"):
        _load_bare(tmp_path / "empty")


def test_java_class_names_map_to_pyspark_classes() -> None:
    assert python_class_name("org.apache.spark.ml.PipelineModel") == "pyspark.ml.PipelineModel"
    assert (
        python_class_name("org.apache.spark.ml.classification.LogisticRegressionModel")
        == "pyspark.ml.classification.LogisticRegressionModel"
    )
    assert python_class_name("org.apache.spark.mllib.Foo") == "org.apache.spark.mllib.Foo"
