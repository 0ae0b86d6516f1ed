"""Prometheus metrics of one app, in a registry of its own (no process-global state)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from voicepocket.pool import PoolStats

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class PoolCollector(Collector):
    """Reads the pool's counters at scrape time."""

    def __init__(self, stats: Callable[[], PoolStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._stats()
        counters = {
            "hits": ("Leases served by a resident voice", stats.hits),
            "misses": ("Leases that found their voice not resident", stats.misses),
            "loads": ("Voices loaded", stats.loads),
            "load_failures": ("Voice loads that failed", stats.load_failures),
            "evictions": ("Voices evicted to make room", stats.evictions),
            "load_seconds": ("Time spent loading voices", stats.load_seconds),
        }
        for name, (doc, value) in counters.items():
            yield CounterMetricFamily(f"voicepocket_pool_{name}", doc, value=value)
        gauges = {
            "resident_bytes": ("Estimated resident bytes of voices", stats.resident_bytes),
            "budget_bytes": ("The pool's byte budget", stats.budget_bytes),
            "resident_voices": ("Voices resident", stats.resident_voices),
            "leases": ("Voice leases held", stats.in_use),
        }
        for name, (doc, value) in gauges.items():
            yield GaugeMetricFamily(f"voicepocket_pool_{name}", doc, value=value)


class Metrics:
    """Every metric the service exports."""

    def __init__(
        self,
        *,
        pool_stats: Callable[[], PoolStats],
        queue_depth: Callable[[], int],
        admitted: Callable[[], int],
        uploads: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "voicepocket_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "voicepocket_http_request_seconds",
            "HTTP request duration until the last byte, by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.time_to_first_audio = Histogram(
            "voicepocket_time_to_first_audio_seconds",
            "From request admission to the first encoded audio bytes",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.real_time_factor = Histogram(
            "voicepocket_real_time_factor",
            "Inference seconds per second of audio, per chunk",
            buckets=RTF_BUCKETS,
            registry=self.registry,
        )
        self.audio_seconds = Counter(
            "voicepocket_audio_seconds",
            "Seconds of audio synthesized",
            registry=self.registry,
        )
        self.chunks = Counter(
            "voicepocket_chunks_synthesized",
            "Text chunks synthesized",
            registry=self.registry,
        )
        self.cache_hits = Counter(
            "voicepocket_output_cache_hits",
            "Speech requests answered from the output cache",
            registry=self.registry,
        )
        self.cache_misses = Counter(
            "voicepocket_output_cache_misses",
            "Speech requests synthesized (and then cached)",
            registry=self.registry,
        )
        queue = Gauge(
            "voicepocket_queue_depth",
            "Text chunks waiting for an inference slot",
            registry=self.registry,
        )
        queue.set_function(queue_depth)
        admitted_now = Gauge(
            "voicepocket_admitted_requests",
            "Syntheses admitted and not yet released (running or waiting for a slot)",
            registry=self.registry,
        )
        admitted_now.set_function(admitted)
        uploads_now = Gauge(
            "voicepocket_uploads_in_flight",
            "Voice uploads, recording checks and exports admitted and not yet answered",
            registry=self.registry,
        )
        uploads_now.set_function(uploads)
        self.registry.register(PoolCollector(pool_stats))
