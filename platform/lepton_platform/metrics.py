"""Platform metrics (Prometheus): invocations, latency, cold starts, replicas, per function."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from lepton.runtime.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from lepton_platform.broker.triggers import Trigger
    from lepton_platform.fleet import Fleet
    from lepton_platform.replicas import Replica


class Invocations(Collector):
    """Invocation counts and latencies as plain numbers, turned into Prometheus families only
    when scraped. prometheus_client's Counter and Histogram take a lock and walk the buckets in
    Python on each observation: about a tenth of the router's own Python per invocation. All of it
    runs on the event loop; a scrape reads copies."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.codes: dict[tuple[str, int], int] = {}
        self.buckets: dict[str, list[int]] = {}  # per function: one count per bound, then +Inf
        self.sums: dict[str, float] = {}

    def record(self, function: str, code: int, seconds: float) -> None:
        key = (function, code)
        self.codes[key] = self.codes.get(key, 0) + 1
        buckets = self.buckets.get(function)
        if buckets is None:
            buckets = self.buckets[function] = [0] * (len(self.bounds) + 1)
            self.sums[function] = 0.0
        buckets[bisect_left(self.bounds, seconds)] += 1
        self.sums[function] += seconds

    def collect(self) -> Iterator[Metric]:
        counts = CounterMetricFamily("lepton_invocations", "Invocations through the router, by status code.", labels=["function", "code"])
        for (function, code), count in list(self.codes.items()):
            counts.add_metric([function, str(code)], count)
        yield counts
        latency = HistogramMetricFamily("lepton_invocation_duration_seconds", "Invocation latency through the router.", labels=["function"])
        bounds = [floatToGoString(bound) for bound in self.bounds] + ["+Inf"]
        for function, buckets in list(self.buckets.items()):
            latency.add_metric([function], list(zip(bounds, accumulate(list(buckets)))), self.sums[function])
        yield latency


class PlatformMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.invocations = Invocations(LATENCY_BUCKETS)
        self.registry.register(self.invocations)
        self.cold_starts = Counter(
            "lepton_cold_starts", "Invocations that waited for a replica to start.", ["function"], registry=self.registry
        )
        self.replica_start = Histogram(
            "lepton_replica_start_seconds", "Process start to ready, per replica.", ["function", "forked"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=self.registry,
        )
        self.replicas = Gauge("lepton_replicas", "Replicas of the routed revision.", ["function"], registry=self.registry)
        self.desired = Gauge("lepton_desired_replicas", "What the autoscaler wants.", ["function"], registry=self.registry)
        self.events_accepted = Counter("lepton_events_accepted", "Events stored by the broker (duplicates excluded).", registry=self.registry)
        self.deliveries = Counter(
            "lepton_trigger_deliveries", "Delivery attempts by outcome: delivered, retried, dead_lettered.",
            ["trigger", "function", "outcome"], registry=self.registry,
        )
        self.backlog = Gauge("lepton_trigger_pending", "Deliveries a trigger still owes.", ["trigger", "function"], registry=self.registry)
        self.lag = Gauge("lepton_trigger_lag_seconds", "Age of the oldest event a trigger still owes.", ["trigger", "function"], registry=self.registry)

    def invoked(self, function: str, code: int, seconds: float, cold: bool) -> None:
        self.invocations.record(function, code, seconds)
        if cold:
            self.cold_starts.labels(function).inc()

    def replica_ready(self, function: str, replica: Replica) -> None:
        if replica.ready_after is not None:
            self.replica_start.labels(function, str(replica.forked).lower()).observe(replica.ready_after)

    def observe_fleet(self, fleet: Fleet) -> None:
        self.replicas.labels(fleet.name).set(len(fleet.replicas))
        self.desired.labels(fleet.name).set(fleet.desired)

    def delivery(self, trigger: Trigger, outcome: str) -> None:
        self.deliveries.labels(trigger.id, trigger.function, outcome).inc()

    def observe_backlog(self, trigger: Trigger, pending: int, lag: float) -> None:
        self.backlog.labels(trigger.id, trigger.function).set(pending)
        self.lag.labels(trigger.id, trigger.function).set(lag)

    def forget_trigger(self, trigger_id: str) -> None:
        for metric in (self.backlog, self.lag, self.deliveries):
            for labels in [key for key in list(metric._metrics) if key[0] == trigger_id]:  # noqa: SLF001 - prometheus_client has no public lookup
                metric.remove(*labels)

    def forget(self, function: str) -> None:
        for metric in (self.replicas, self.desired):
            try:
                metric.remove(function)
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)
