"""Prometheus metrics of one function server, in a registry of its own (never the global one,
so two apps in one process do not collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest

# `*_created` series double the output and no dashboard of ours reads them.
disable_created_metrics()

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self, function: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["function"]
        self.requests = Counter("lepton_requests", "Invocations answered, by status code.", labels + ["code"], registry=self.registry)
        self.errors = Counter("lepton_errors", "Failed invocations, by cause.", labels + ["cause"], registry=self.registry)
        self.latency = Histogram(
            "lepton_request_duration_seconds",
            "Invocation latency.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("lepton_in_flight_requests", "Invocations being handled now.", labels, registry=self.registry)
        self.batch_size = Histogram(
            "lepton_batch_size",
            "Items per batched handler call.",
            labels,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096),
            registry=self.registry,
        )
        self.function = function
        self._in_flight = self.in_flight.labels(function)
        self._latency = self.latency.labels(function)
        self._codes: dict[int, Counter] = {}

    def started(self) -> None:
        self._in_flight.inc()

    def finished(self, code: int, seconds: float) -> None:
        self._in_flight.dec()
        self._latency.observe(seconds)
        counter = self._codes.get(code)
        if counter is None:
            counter = self._codes[code] = self.requests.labels(self.function, str(code))
        counter.inc()

    def error(self, cause: str) -> None:
        self.errors.labels(self.function, cause).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
