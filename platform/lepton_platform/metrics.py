"""Platform metrics (Prometheus): invocations, latency, cold starts, replicas, per function."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lepton.runtime.metrics import LATENCY_BUCKETS

if TYPE_CHECKING:
    from lepton_platform.broker.triggers import Trigger
    from lepton_platform.fleet import Fleet
    from lepton_platform.replicas import Replica


class PlatformMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.invocations = Counter(
            "lepton_invocations", "Invocations through the router, by status code.", ["function", "code"], registry=self.registry
        )
        self.latency = Histogram(
            "lepton_invocation_duration_seconds", "Invocation latency through the router.", ["function"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )
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
        self._invoked: dict[tuple[str, int], tuple[Counter, Histogram]] = {}
        self.lag = Gauge("lepton_trigger_lag_seconds", "Age of the oldest event a trigger still owes.", ["trigger", "function"], registry=self.registry)

    def invoked(self, function: str, code: int, seconds: float, cold: bool) -> None:
        # On every invocation: `labels()` takes a lock and builds a key, so keep the children.
        children = self._invoked.get((function, code))
        if children is None:
            children = self._invoked[function, code] = (self.invocations.labels(function, str(code)), self.latency.labels(function))
        children[0].inc()
        children[1].observe(seconds)
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
