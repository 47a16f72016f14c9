"""Adaptive batching, latency SLOs and the prediction cache, through the HTTP server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import modelcore
from modelcore.runtime import LoadedVersion
from modelcore.runtime.loaded import AUTO_INLINE_CALLS, AUTO_INLINE_UNDER, INLINE_STRIKES
from modelcore.server import MANAGER


async def post(client, path, payload):
    resp = await client.post(path, data=json.dumps(payload))
    return resp.status, await resp.json()


def echo_with_batch_size(xs):
    import time

    time.sleep(0.02)
    return [json.dumps({"x": float(x[0]), "batch": len(xs)}) for x in xs]


async def test_concurrent_requests_are_batched_and_split_back(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", echo_with_batch_size)
    client = await serve(
        "- {name: m, model: m, threads: 1, batching: {max_batch_size: 8, max_delay_ms: 20}}"
    )
    answers = await asyncio.gather(
        *(post(client, "/m/predict", {"input": [float(i)]}) for i in range(24))
    )
    assert all(status == 200 for status, _ in answers)
    assert [body["output"]["x"] for _, body in answers] == [float(i) for i in range(24)]
    sizes = [body["output"]["batch"] for _, body in answers]
    assert max(sizes) == 8 and min(sizes) >= 1
    stats = (await (await client.get("/v2/apis/m")).json())["batching"]["m"]
    assert stats["batches"] < 24 and stats["mean_batch_size"] > 1


def picky(xs):
    if any(x[0] < 0 for x in xs):
        raise ValueError("negative input in the batch")
    return [float(x[0]) * 2 for x in xs]


@pytest.mark.parametrize(
    ("where", "delay"), [("threads: 1", 50), ("isolation: inline", 50), ("isolation: inline", 0)]
)
async def test_one_bad_input_fails_only_its_own_request(
    store_dir: Path, serve, where: str, delay: int
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", picky)
    client = await serve(
        f"- {{name: m, model: m, {where}, batching: {{max_batch_size: 16, max_delay_ms: {delay}}}}}"
    )
    values = [1.0, 2.0, -1.0, 3.0, 4.0]
    answers = await asyncio.gather(*(post(client, "/m/predict", {"input": [v]}) for v in values))
    for value, (status, body) in zip(values, answers, strict=True):
        if value < 0:
            assert status == 500 and "negative input" in body["error"]
        else:
            assert status == 200 and body["output"] == value * 2


def per_item_cost(xs):
    import time

    time.sleep(0.002 + 0.0005 * len(xs))
    return [len(xs) for _ in xs]


async def test_adaptive_batching_grows_the_batch_within_the_slo(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", per_item_cost)
    client = await serve(
        "- {name: m, model: m, threads: 1, slo_ms: 200,"
        " batching: {max_batch_size: 32, adaptive: true}}"
    )
    for _ in range(6):
        answers = await asyncio.gather(
            *(post(client, "/m/predict", {"input": [1.0]}) for _ in range(48))
        )
        assert all(status == 200 and not body["default"] for status, body in answers)
    stats = (await (await client.get("/v2/apis/m")).json())["batching"]["m"]
    assert stats["limit"] > 8, stats  # grew from 1 by AIMD; each batch stays far below 100 ms


def slow(xs):
    import time

    time.sleep(0.3)
    return ["slow" for _ in xs]


async def test_a_missed_slo_answers_the_default_and_drops_late_work(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve(
        "- {name: m, model: m, threads: 1, slo_ms: 100, default_output: late,"
        " batching: {max_batch_size: 1}}"
    )
    started = time.monotonic()
    answers = await asyncio.gather(
        *(post(client, "/m/predict", {"input": [1.0]}) for _ in range(5))
    )
    assert time.monotonic() - started < 1.0  # never queued behind one another (5 x 0.3 s)
    for status, body in answers:
        assert status == 200
        assert body["output"] == "late" and body["default"] is True
        assert body["default_explanation"] == "no answer within the API's 100 ms SLO"
    await asyncio.sleep(0.4)
    stats = (await (await client.get("/v2/apis/m")).json())["batching"]["m"]
    assert stats["dropped_late"] == 4 and stats["batches"] == 1


async def test_a_missed_slo_without_batching_answers_the_default_in_time(
    store_dir: Path, serve
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", slow)
    client = await serve("- {name: m, model: m, threads: 1, slo_ms: 100, default_output: late}")
    started = time.monotonic()
    status, body = await post(client, "/m/predict", {"input": [1.0]})
    assert time.monotonic() - started < 0.25  # the model takes 0.3 s
    assert status == 200 and body["output"] == "late" and body["default"] is True
    stats = await (await client.get("/v2/apis/m")).json()
    assert stats["slo_defaults"] == 1


def counter():
    state = {"calls": 0}

    def predict(xs):
        state["calls"] += 1
        return [state["calls"] for _ in xs]

    return predict


async def test_prediction_cache_hits_and_never_crosses_versions(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", counter())
    client = await serve("- {name: m, model: m, cache: {max_bytes: 1MB}}")
    assert (await post(client, "/m/predict", {"input": [1.0]}))[1]["output"] == 1
    assert (await post(client, "/m/predict", {"input": [1.0]}))[1]["output"] == 1  # a hit
    assert (await post(client, "/m/predict", {"input": [2.0]}))[1]["output"] == 2  # a miss
    _, body = await post(client, "/m/predict", {"input_batch": [[1.0], [3.0], [2.0]]})
    assert [p["output"] for p in body["batch_predictions"]] == [1, 3, 2]  # only [3.0] computed
    cache = (await (await client.get("/v2/apis/m")).json())["cache"]
    assert (cache["hits"], cache["misses"], cache["entries"]) == (3, 3, 3)
    modelcore.deploy_python_closure(store_dir, "m", lambda xs: ["v2" for _ in xs])
    manager = client.app[MANAGER]
    deadline = time.monotonic() + 15
    while manager.model_status("m")["latest"] != 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    assert (await post(client, "/m/predict", {"input": [1.0]}))[1]["output"] == "v2"


def where_it_ran(xs):
    import threading
    import time

    if any(x[0] > 100 for x in xs):
        time.sleep(0.01)  # over the inline budget
    return [threading.current_thread().name for _ in xs]


@pytest.mark.parametrize(
    ("batching", "budget_ms", "slow_calls"),
    [
        ("", 5, INLINE_STRIKES),  # 10 ms calls: one strike each
        (", batching: {max_batch_size: 8}", 5, INLINE_STRIKES),
        ("", 0.5, 2),  # 10 ms is over ten budgets: five strikes each
        (", batching: {max_batch_size: 8}", 0.5, 2),
    ],
)
async def test_inline_runs_on_the_loop_until_calls_are_too_slow(
    store_dir: Path, serve, batching: str, budget_ms: float, slow_calls: int
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", where_it_ran)
    client = await serve(
        f"- {{name: m, model: m, isolation: inline, inline_budget_ms: {budget_ms}{batching}}}"
    )
    loop_thread = __import__("threading").current_thread().name
    status, body = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 200 and body["output"] == loop_thread
    model = await (await client.get("/v2/models/m")).json()
    assert model["status"]["versions"][0]["inline"] is True
    # Slow calls now and then are forgiven (the OS preempting the server); a run of them is not.
    for strike in range(slow_calls):
        status, body = await post(client, "/m/predict", {"input": [500.0]})
        assert status == 200 and body["output"] == loop_thread  # answered, then counted
        if strike < slow_calls - 1:
            status, body = await post(client, "/m/predict", {"input": [1.0]})
            assert status == 200 and body["output"] == loop_thread
    status, body = await post(client, "/m/predict", {"input": [1.0]})
    assert status == 200 and body["output"].startswith("predict-m")
    model = await (await client.get("/v2/models/m")).json()
    assert model["status"]["versions"][0]["inline"] is False


@pytest.mark.parametrize("batching", ["", ", batching: {max_batch_size: 8}"])
async def test_unset_isolation_moves_a_fast_model_onto_the_loop_and_back_for_good(
    store_dir: Path, serve, batching: str
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", where_it_ran)
    client = await serve(f"- {{name: m, model: m, inline_budget_ms: 5{batching}}}")
    loop_thread = __import__("threading").current_thread().name

    async def ran_where() -> str:
        status, body = await post(client, "/m/predict", {"input": [1.0]})
        assert status == 200
        return body["output"]

    async def status() -> bool:
        return (await (await client.get("/v2/models/m")).json())["status"]["versions"][0]["inline"]

    places = [await ran_where()]
    assert places[0].startswith("predict-m") and not await status()
    while places[-1] != loop_thread:  # a run of fast calls in threads (a slow one restarts it)
        assert len(places) < AUTO_INLINE_CALLS * 10
        places.append(await ran_where())
    assert len(places) > AUTO_INLINE_CALLS and await status()  # proved fast: on the event loop
    assert all(p == loop_thread for p in [await ran_where() for _ in range(20)])
    for _ in range(INLINE_STRIKES):  # then slow calls move it back to threads
        assert (await post(client, "/m/predict", {"input": [500.0]}))[0] == 200
    places = [await ran_where() for _ in range(AUTO_INLINE_CALLS + 20)]
    assert all(p.startswith("predict-m") for p in places) and not await status()  # for good


async def test_isolation_thread_keeps_a_fast_model_in_threads(store_dir: Path, serve) -> None:
    modelcore.deploy_python_closure(store_dir, "m", where_it_ran)
    client = await serve("- {name: m, model: m, isolation: thread}")
    for _ in range(AUTO_INLINE_CALLS + 20):
        status, body = await post(client, "/m/predict", {"input": [1.0]})
        assert status == 200 and body["output"].startswith("predict-m")
    model = await (await client.get("/v2/models/m")).json()
    assert model["status"]["versions"][0]["inline"] is False


def test_a_run_of_fast_calls_promotes_with_slack_and_none_over_budget() -> None:
    def fresh() -> LoadedVersion:
        lv = LoadedVersion("m", 1, backend=None, model=None, manifest=None)  # type: ignore[arg-type]
        lv.auto_inline = True
        return lv

    fast, slowish, over_budget = AUTO_INLINE_UNDER / 2, AUTO_INLINE_UNDER * 2, 0.002
    lv = fresh()
    for i in range(AUTO_INLINE_CALLS):
        lv._ran_in_thread(slowish if i % 20 == 0 else fast)  # within the slack
    assert lv.inline
    lv = fresh()
    for i in range(AUTO_INLINE_CALLS * 3):
        lv._ran_in_thread(slowish if i % 10 == 0 else fast)  # more than the slack: never
    assert not lv.inline
    lv = fresh()
    for _ in range(AUTO_INLINE_CALLS - 1):
        lv._ran_in_thread(fast)
    lv._ran_in_thread(over_budget)  # one call over the inline budget starts the run again
    for _ in range(AUTO_INLINE_CALLS - 1):
        lv._ran_in_thread(fast)
    assert not lv.inline
    lv._ran_in_thread(fast)
    assert lv.inline
    lv = fresh()
    lv.auto_inline = False  # isolation: thread, or moved back after strikes
    for _ in range(AUTO_INLINE_CALLS * 2):
        lv._ran_in_thread(fast)
    assert not lv.inline


@pytest.mark.parametrize("delay_ms", [0, 20])
async def test_inline_batches_what_arrived_while_the_loop_was_busy(
    store_dir: Path, serve, delay_ms: int
) -> None:
    modelcore.deploy_python_closure(store_dir, "m", echo_with_batch_size)
    client = await serve(
        "- {name: m, model: m, isolation: inline, inline_budget_ms: 50,"
        f" batching: {{max_batch_size: 8, max_delay_ms: {delay_ms}}}}}"
    )
    answers = await asyncio.gather(
        *(post(client, "/m/predict", {"input": [float(i)]}) for i in range(24))
    )
    assert all(status == 200 for status, _ in answers)
    assert [body["output"]["x"] for _, body in answers] == [float(i) for i in range(24)]
    assert max(body["output"]["batch"] for _, body in answers) > 1
    model = await (await client.get("/v2/models/m")).json()
    assert model["status"]["versions"][0]["inline"] is True
