"""Platform metrics (Prometheus): invocations, latency, cold starts, replicas, per function."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from itertools import accumulate
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from lepton.runtime.metrics import LATENCY_BUCKETS
from lepton_platform.history import History

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


class _Families(Collector):
    def __init__(self, source: Callable[[], Iterable[Metric]]) -> None:
        self.source = source

    def describe(self) -> Iterable[Metric]:
        return []  # not collected when registered: the source may not be ready yet

    def collect(self) -> Iterable[Metric]:
        return self.source()


class PlatformMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.invocations = Invocations(LATENCY_BUCKETS)
        self._fleets: dict[str, dict[int, tuple[int, int]]] = {}  # function -> id(fleet) -> (replicas, desired)
        self.registry.register(self.invocations)
        self.history = History(LATENCY_BUCKETS)  # the console's charts: the last hour, a minute at a time
        self.cold_starts = Counter(
            "lepton_cold_starts", "Invocations that waited for a replica to start.", ["function"], registry=self.registry
        )
        self.replica_start = Histogram(
            "lepton_replica_start_seconds",
            "Process start to ready, per replica.",
            ["function", "forked"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.replicas = Gauge("lepton_replicas", "Replicas of the routed revision.", ["function"], registry=self.registry)
        self.desired = Gauge("lepton_desired_replicas", "What the autoscaler wants.", ["function"], registry=self.registry)
        self.events_accepted = Counter(
            "lepton_events_accepted", "Events stored by the broker (duplicates excluded).", registry=self.registry
        )
        self.deliveries = Counter(
            "lepton_trigger_deliveries",
            "Delivery attempts by outcome: delivered, retried, dead_lettered.",
            ["trigger", "function", "outcome"],
            registry=self.registry,
        )

    def invoked(self, function: str, code: int, seconds: float, cold: bool) -> None:
        self.invocations.record(function, code, seconds)
        self.history.record(function, code >= 500, seconds, cold)
        if cold:
            self.cold_starts.labels(function).inc()

    def replica_ready(self, function: str, replica: Replica) -> None:
        if replica.ready_after is not None:
            self.replica_start.labels(function, str(replica.forked).lower()).observe(replica.ready_after)

    def observe_fleet(self, fleet: Fleet) -> None:
        """Per function, summed over the fleets of its revisions (a traffic split has several)."""
        counts = self._fleets.setdefault(fleet.name, {})
        counts[id(fleet)] = (len(fleet.replicas), fleet.desired)
        if counts[id(fleet)] == (0, 0) and len(counts) > 1:
            del counts[id(fleet)]  # a drained fleet, or one at zero beside others
        self.replicas.labels(fleet.name).set(sum(replicas for replicas, _ in counts.values()))
        self.desired.labels(fleet.name).set(sum(desired for _, desired in counts.values()))

    def delivery(self, trigger: Trigger, outcome: str) -> None:
        self.deliveries.labels(trigger.id, trigger.function, outcome).inc()

    def collect_from(self, source: Callable[[], Iterable[Metric]]) -> None:
        """Families made when scraped (the broker's backlogs)."""
        self.registry.register(_Families(source))

    def forget_trigger(self, trigger_id: str) -> None:
        for labels in [key for key in list(self.deliveries._metrics) if key[0] == trigger_id]:
            self.deliveries.remove(*labels)

    def forget(self, function: str) -> None:
        self._fleets.pop(function, None)
        self.history.forget(function)
        for metric in (self.replicas, self.desired):
            try:
                metric.remove(function)
            except KeyError:
                pass

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def replica_series(replicas: Iterable[Replica], timeout: float = 2.0) -> bytes:
    """Every ready replica's own series (`/_lepton/metrics`: requests, errors, latency, in
    flight, batch sizes), labelled with its revision and replica as well as its function and
    merged into one exposition, so one scrape of the platform gives the dashboard what a
    Prometheus scraping pods gives it on Knative. A replica that does not answer in time is
    left out of this scrape."""
    import asyncio

    from prometheus_client.parser import text_string_to_metric_families

    async def fetch(replica: Replica) -> tuple[Replica, str]:
        session = replica.session
        if session is None:  # not connected (any more)
            return replica, ""
        try:
            async with asyncio.timeout(timeout):
                async with session.get("/_lepton/metrics") as response:
                    return replica, await response.text() if response.status == 200 else ""
        except Exception:  # gone, draining or slow: its series are missing from this scrape
            return replica, ""

    merged: dict[str, Metric] = {}
    for replica, text in await asyncio.gather(*(fetch(r) for r in replicas)):
        extra = {"revision": replica.revision.id, "replica": replica.id}
        for family in text_string_to_metric_families(text):
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            for sample in family.samples:
                into.samples.append(sample._replace(labels={**sample.labels, **extra}))
    if not merged:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(lambda: list(merged.values())))
    return generate_latest(registry)
