"""``GET /metrics``: the server's figures in the Prometheus text format (prometheus_client).

The hot path (every request, every queued input, every batch) only bumps
plain counters and bucket arrays; they become Prometheus families when the
endpoint is scraped. prometheus_client's own metric objects take a lock and a
label lookup per observation, which cost this server a measurable share of
its throughput. Rare events (loads, swaps) and levels (models loaded, queue
depths, caches, worker restarts) are read the same way at scrape time. Each
app has its own registry: two servers in one process never mix figures.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from modelcore.runtime.observer import Observer
from modelcore.runtime.worker.pool import WorkerPool
from modelcore.server.errors import error_answer
from modelcore.server.security import Handler

if TYPE_CHECKING:
    from modelcore.runtime import ModelManager

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LOAD_BUCKETS = (0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300)


class _Histogram:
    """Bucket counts and a sum: what a Prometheus histogram is, without a lock per observation."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), running))
        return out


class _Family:
    """A histogram per label tuple."""

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.series: dict[tuple[str, ...], _Histogram] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        self.series_for(labels).observe(value)

    def series_for(self, labels: tuple[str, ...]) -> _Histogram:
        hist = self.series.get(labels)
        if hist is None:
            hist = self.series[labels] = _Histogram(self.bounds)
        return hist

    def collect(self, name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=labels)
        for values, hist in list(self.series.items()):
            family.add_metric(list(values), hist.buckets(), hist.total)
        return family


class Metrics(Observer):
    """The registry, the event figures, and the runtime observer that feeds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency = _Family(LATENCY_BUCKETS)
        self.queue = _Family(LATENCY_BUCKETS)
        self.compute = _Family(LATENCY_BUCKETS)
        self.batch = _Family(BATCH_BUCKETS)
        self.loads = _Family(LOAD_BUCKETS)
        self.events: dict[tuple[str, str], int] = {}
        # compute and batch sizes are observed from predict threads; one lock per batch
        self._lock = threading.Lock()
        self._predicted: dict[tuple[str, int], tuple[_Histogram, _Histogram]] = {}

    # -- the runtime observer --------------------------------------------------------
    def _event(self, kind: str, model: str) -> None:
        self.events[(kind, model)] = self.events.get((kind, model), 0) + 1

    def loaded(self, model: str, version: int, seconds: float) -> None:
        self.loads.observe((model,), seconds)

    def load_failed(self, model: str, version: int) -> None:
        self._event("load_failures", model)

    def swapped(self, model: str, version: int) -> None:
        self._event("swaps", model)

    def unloaded(self, model: str, version: int) -> None:
        self._event("unloads", model)

    def predicted(self, model: str, version: int, size: int, seconds: float) -> None:
        with self._lock:
            series = self._predicted.get((model, version))
            if series is None:
                series = self._predicted[(model, version)] = (
                    self.compute.series_for((model, str(version))),
                    self.batch.series_for((model,)),
                )
            series[0].observe(seconds)
            series[1].observe(size)

    def queued(self, model: str, seconds: float) -> None:
        self.queue.observe((model,), seconds)

    # -- wiring ----------------------------------------------------------------------
    def watch(self, manager: ModelManager, apis: dict[str, Any]) -> None:
        """Report the events, and the levels of ``manager`` and the APIs, at each scrape."""
        self.registry.register(_Levels(self, manager, apis))

    def metered(
        self, handler: Handler, route: str, known: Callable[[str], bool] | None = None
    ) -> Handler:
        """``handler`` answering its failures as JSON, counted and timed under ``route``.

        Done once per route at start-up instead of in a middleware: an aiohttp
        middleware costs every request two more coroutines and a lookup of its
        route's labels. ``known`` (for routes naming a model in the URL) keeps the
        model label to served models, so names from URLs cannot create series
        without bound.
        """
        requests = self.requests
        latency = self.latency.series_for((route,))
        clock = time.perf_counter

        async def answer(request: web.Request) -> web.StreamResponse:
            started = clock()
            code = 500
            try:
                try:
                    response = await handler(request)
                except Exception as exc:
                    response = error_answer(request, exc)  # re-raises redirects
                code = response.status
                return response
            except web.HTTPException as exc:
                code = exc.status
                raise
            finally:
                model = ""
                if known is not None:
                    info = request.match_info
                    model = info.get("name") or info.get("model") or ""
                    if model and not known(model):
                        model = ""
                key = (route, model, code)
                requests[key] = requests.get(key, 0) + 1
                latency.observe(clock() - started)

        answer.__name__ = getattr(handler, "__name__", "answer")
        return answer

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Levels(Collector):
    def __init__(self, metrics: Metrics, manager: ModelManager, apis: dict[str, Any]):
        self.metrics = metrics
        self.manager = manager
        self.apis = apis

    def collect(self) -> Iterator[Any]:
        yield from self._events()
        yield from self._models()
        yield from self._caches()

    def _events(self) -> Iterator[Any]:
        m = self.metrics
        requests = CounterMetricFamily(
            "modelcore_requests", "HTTP requests answered", labels=["route", "model", "code"]
        )
        errors = CounterMetricFamily(
            "modelcore_request_errors",
            "HTTP requests answered with 4xx or 5xx",
            labels=["route", "model", "code"],
        )
        for (route, model, code), n in list(m.requests.items()):
            requests.add_metric([route, model, str(code)], n)
            if code >= 400:
                errors.add_metric([route, model, str(code)], n)
        yield requests
        yield errors
        yield m.latency.collect("modelcore_request_seconds", "Time to answer a request", ["route"])
        yield m.queue.collect(
            "modelcore_queue_seconds", "Time a request waited for its batch", ["model"]
        )
        with m._lock:
            yield m.compute.collect(
                "modelcore_compute_seconds",
                "Time the backend took for a batch",
                ["model", "version"],
            )
            yield m.batch.collect("modelcore_batch_size", "Inputs per backend call", ["model"])
        yield m.loads.collect(
            "modelcore_load_seconds", "Time to load (and warm up) a version", ["model"]
        )
        docs = {
            "load_failures": "Versions that failed to load",
            "swaps": "Versions swapped in to answer latest",
            "unloads": "Versions unloaded",
        }
        for kind, doc in docs.items():
            family = CounterMetricFamily(f"modelcore_{kind}", doc, labels=["model"])
            for (k, model), n in list(m.events.items()):
                if k == kind:
                    family.add_metric([model], n)
            yield family

    def _models(self) -> Iterator[Any]:
        loaded = GaugeMetricFamily(
            "modelcore_models_loaded", "Loaded versions per model", labels=["model"]
        )
        serving = GaugeMetricFamily(
            "modelcore_serving_version", "The version answering latest", labels=["model"]
        )
        depth = GaugeMetricFamily(
            "modelcore_queue_depth", "Inputs waiting in batch queues", labels=["model"]
        )
        inflight = GaugeMetricFamily("modelcore_inflight", "Requests in flight", labels=["model"])
        restarts = CounterMetricFamily(
            "modelcore_worker_restarts", "Worker processes restarted", labels=["model"]
        )
        for name, slot in list(self.manager.slots.items()):
            versions = {id(lv): lv for lv in slot.loaded.values()}
            if slot.latest is not None:
                versions[id(slot.latest)] = slot.latest
            loaded.add_metric([name], len(versions))
            if slot.latest is not None:
                serving.add_metric([name], slot.latest.version)
            depth.add_metric(
                [name],
                sum(lv.batcher.queued_inputs for lv in versions.values() if lv.batcher is not None),
            )
            inflight.add_metric([name], sum(lv.inflight for lv in versions.values()))
            restarts.add_metric(
                [name],
                sum(
                    lv.model.restarts
                    for lv in versions.values()
                    if isinstance(lv.model, WorkerPool)
                ),
            )
        yield from (loaded, serving, depth, inflight, restarts)

    def _caches(self) -> Iterator[Any]:
        hits = CounterMetricFamily("modelcore_cache_hits", "Prediction cache hits", labels=["api"])
        misses = CounterMetricFamily(
            "modelcore_cache_misses", "Prediction cache misses", labels=["api"]
        )
        evictions = CounterMetricFamily(
            "modelcore_cache_evictions", "Prediction cache evictions", labels=["api"]
        )
        size = GaugeMetricFamily("modelcore_cache_bytes", "Prediction cache size", labels=["api"])
        slo = CounterMetricFamily(
            "modelcore_slo_defaults", "Answers given as the SLO's default", labels=["api"]
        )
        for name, api in list(self.apis.items()):
            slo.add_metric([name], api.slo_defaults)
            if api.cache is not None:
                stats = api.cache.stats()
                hits.add_metric([name], stats["hits"])
                misses.add_metric([name], stats["misses"])
                evictions.add_metric([name], stats["evictions"])
                size.add_metric([name], stats["bytes"])
        yield from (hits, misses, evictions, size, slo)
