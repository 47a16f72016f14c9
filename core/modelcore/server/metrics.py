"""``GET /metrics``: the server's figures in the Prometheus text format (prometheus_client).

Events (requests, loads, swaps, batches) are counted as they happen; levels
(models loaded, queue depths, cache contents, worker restarts) are read from
the live objects at scrape time, so nothing is counted twice or goes stale.
Each app has its own registry: two servers in one process never mix figures.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from modelcore.runtime.observer import Observer
from modelcore.runtime.worker.pool import WorkerPool

if TYPE_CHECKING:
    from modelcore.runtime import ModelManager

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

MODEL = web.AppKey("metrics_model", str)


class Metrics(Observer):
    """The registry, the event metrics, and the runtime observer that feeds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "modelcore_requests", "HTTP requests answered", ["route", "model", "code"], registry=r
        )
        self.errors = Counter(
            "modelcore_request_errors",
            "HTTP requests answered with 4xx or 5xx",
            ["route", "model", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "modelcore_request_seconds",
            "Time to answer a request",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue = Histogram(
            "modelcore_queue_seconds",
            "Time a request waited for its batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.compute = Histogram(
            "modelcore_compute_seconds",
            "Time the backend took for a batch",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch = Histogram(
            "modelcore_batch_size",
            "Inputs per backend call",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.loads = Histogram(
            "modelcore_load_seconds",
            "Time to load (and warm up) a version",
            ["model"],
            buckets=(0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.load_failures = Counter(
            "modelcore_load_failures", "Versions that failed to load", ["model"], registry=r
        )
        self.swaps = Counter(
            "modelcore_swaps", "Versions swapped in to answer latest", ["model"], registry=r
        )
        self.unloads = Counter("modelcore_unloads", "Versions unloaded", ["model"], registry=r)

    # -- the runtime observer --------------------------------------------------------
    def loaded(self, model: str, version: int, seconds: float) -> None:
        self.loads.labels(model).observe(seconds)

    def load_failed(self, model: str, version: int) -> None:
        self.load_failures.labels(model).inc()

    def swapped(self, model: str, version: int) -> None:
        self.swaps.labels(model).inc()

    def unloaded(self, model: str, version: int) -> None:
        self.unloads.labels(model).inc()

    def predicted(self, model: str, version: int, size: int, seconds: float) -> None:
        self.compute.labels(model, str(version)).observe(seconds)
        self.batch.labels(model).observe(size)

    def queued(self, model: str, seconds: float) -> None:
        self.queue.labels(model).observe(seconds)

    # -- wiring ----------------------------------------------------------------------
    def watch(self, manager: ModelManager, apis: dict[str, Any]) -> None:
        """Report the levels of ``manager`` and the APIs' caches at each scrape."""
        self.registry.register(_Levels(manager, apis))

    def middleware(
        self, known: Callable[[str], bool] = lambda _name: True
    ) -> Callable[..., Awaitable[web.StreamResponse]]:
        """Count every request; ``known`` keeps the model label to served models (bounded series)."""

        @web.middleware
        async def count(request: web.Request, handler: Any) -> web.StreamResponse:
            started = time.perf_counter()
            route = request.match_info.route.resource
            name = route.canonical if route is not None else "unmatched"
            code = 500
            try:
                response: web.StreamResponse = await handler(request)
                code = response.status
                return response
            except web.HTTPException as exc:
                code = exc.status
                raise
            finally:
                model = request.match_info.get("name") or request.match_info.get("model") or ""
                if not known(model):
                    model = ""  # a name from the URL that is not served: no series of its own
                self.requests.labels(name, model, str(code)).inc()
                if code >= 400:
                    self.errors.labels(name, model, str(code)).inc()
                self.latency.labels(name).observe(time.perf_counter() - started)

        return count

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Levels(Collector):
    def __init__(self, manager: ModelManager, apis: dict[str, Any]):
        self.manager = manager
        self.apis = apis

    def collect(self) -> Iterator[Any]:
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
