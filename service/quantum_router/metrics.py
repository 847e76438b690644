"""Prometheus metrics, on a registry per application so several apps (tests) do not collide.

Under ``quantum-router serve --workers N`` every worker process writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode, chosen by that variable when the
library is imported) and any worker's ``/metrics`` reads them all, so counters and histograms add up over
the workers. Gauges say how they combine (``multiprocess_mode``); the connection pools and the cache hit
ratio belong to one process each and are exported per ``pid``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from quantum_router.db.pool import PoolStats

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def multiprocess_dir() -> str | None:
    """The directory worker processes share their metric values through, when serving with several."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def multiprocess_registry(path: str) -> CollectorRegistry:
    """A registry that reads every worker's values from ``path`` at scrape time."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path)  # type: ignore[no-untyped-call]
    return registry


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        shared = multiprocess_dir()
        # What /metrics serves: this registry, or in multiprocess mode every worker's values plus this
        # worker's own per-process collectors (added by watch_pools).
        self.exposition = r if shared is None else multiprocess_registry(shared)
        self._multiprocess = shared is not None
        self.request_duration = Histogram(
            "qr_http_request_duration_seconds",
            "HTTP request duration by route template, method and status.",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # The autoscaler's custom metric, under the name the operator's HorizontalPodAutoscaler asks for
        # (hence not ``qr_``).
        self.inflight_requests = Gauge(
            "quantum_router_inflight_requests",
            "HTTP requests being served now (probes and /metrics excluded).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.cache_requests = Counter(
            "qr_cache_requests_total", "Cache lookups by result.", ["result"], registry=r
        )
        self.cache_errors = Counter(
            "qr_cache_errors_total", "Cache backend errors (served as misses).", registry=r
        )
        self.model_selections = Counter(
            "qr_model_selections_total",
            "Routing decisions by model and whether they explored.",
            ["model", "explored"],
            registry=r,
        )
        self.variations = Counter(
            "qr_variations_total", "Variations run by model and outcome.", ["model", "outcome"], registry=r
        )
        self.provider_errors = Counter(
            "qr_provider_errors_total", "Failed provider calls by model.", ["model"], registry=r
        )
        self.cost = Counter("qr_cost_usd_total", "Upstream cost in USD by model.", ["model"], registry=r)
        self.judge_calls = Counter(
            "qr_judge_calls_total",
            "Judge verdicts by outcome (ok, unparsed, error) and sampled answers skipped (budget, backlog).",
            ["outcome"],
            registry=r,
        )
        self.judge_cost = Counter(
            "qr_judge_cost_usd_total", "Upstream cost of judge calls (also in qr_cost_usd_total).", registry=r
        )
        self.decision_seconds = Histogram(
            "qr_routing_decision_seconds",
            "Feature extraction plus policy scoring.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
            registry=r,
        )
        self.policy_info = Gauge(
            "qr_policy_loaded",
            "1 for the policy version being served.",
            ["version"],
            registry=r,
            multiprocess_mode="livemax",
        )
        self.cache_hit_ratio = Gauge(
            "qr_cache_hit_ratio",
            "Hits over lookups since start (per worker process; a pid label with several).",
            registry=r,
            multiprocess_mode="liveall",
        )
        # Set by /v1/health and /readyz, which the kubelet calls every few seconds: alerts need a series that
        # says "down" while no request reaches the database (the others only count what requests see).
        self.dependency_up = Gauge(
            "qr_dependency_up",
            "1 when the dependency answered the last /readyz or /v1/health ping, else 0.",
            ["dependency"],
            registry=r,
            multiprocess_mode="livemostrecent",
        )
        self.experience_queue_depth = Gauge(
            "qr_experience_queue_depth",
            "Experience rows waiting for the batch writer.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.experience_flush_seconds = Histogram(
            "qr_experience_flush_seconds",
            "Time to commit one batch of experiences.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.experience_batch_size = Histogram(
            "qr_experience_batch_size",
            "Experiences per committed batch.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=r,
        )
        self._lookups = {"hit": 0, "miss": 0}  # counted here: prometheus_client has no public read-back
        self._versions: set[str] = set()

    def serving_policy(self, version: str) -> None:
        """Mark ``version`` as the one being served (and no other)."""
        if self._multiprocess:
            # Zeroed rather than removed: in multiprocess mode a removed series keeps its last value on disk.
            for old in self._versions - {version}:
                self.policy_info.labels(old).set(0)
            self._versions.add(version)
        else:
            self.policy_info.clear()
        self.policy_info.labels(version).set(1)

    def dependencies_pinged(self, database: bool, cache: bool) -> None:
        """Record whether the database and the cache answered a health or readiness ping."""
        self.dependency_up.labels("database").set(int(database))
        self.dependency_up.labels("cache").set(int(cache))

    def watch_pools(self, stats: PoolStats) -> None:
        """Export connection-pool checkouts and efficiency, read from ``stats`` at scrape time."""
        self.exposition.register(_PoolCollector(stats, str(os.getpid()) if self._multiprocess else None))

    def record_cache(self, hit: bool) -> None:
        """Count a lookup and refresh the hit ratio."""
        result = "hit" if hit else "miss"
        self.cache_requests.labels(result).inc()
        self._lookups[result] += 1
        self.cache_hit_ratio.set(self._lookups["hit"] / (self._lookups["hit"] + self._lookups["miss"]))


class _PoolCollector(Collector):
    """Pools belong to one process; with several workers each exports its own, labelled by ``pid``."""

    def __init__(self, stats: PoolStats, pid: str | None) -> None:
        self._stats = stats
        self._pid = [pid] if pid is not None else []

    def collect(self) -> Iterator[Metric]:
        checkouts = CounterMetricFamily(
            "qr_db_pool_checkouts",
            "Connection checkouts by engine and whether an idle one was ready.",
            labels=["engine", "immediate", *(["pid"] if self._pid else [])],
        )
        efficiency = GaugeMetricFamily(
            "qr_db_pool_efficiency",
            "Share of checkouts served without opening or waiting.",
            labels=["engine", *(["pid"] if self._pid else [])],
        )
        for engine in sorted(self._stats.total):
            immediate = self._stats.immediate[engine]
            checkouts.add_metric([engine, "true", *self._pid], immediate)
            checkouts.add_metric([engine, "false", *self._pid], self._stats.total[engine] - immediate)
            efficiency.add_metric([engine, *self._pid], self._stats.efficiency(engine))
        yield checkouts
        yield efficiency
