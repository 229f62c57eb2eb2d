"""Knative KPA semantics on one machine.

desired = ceil(average in-flight / target) over a stable window; a panic window a tenth as
long reacts to bursts (entered when it asks for twice the ready replicas; no scaling down
while in panic); clamped to [min_scale, max_scale]; scale to zero once nothing has arrived
for `scale_down_after` seconds. `decide` is pure: no clocks, no processes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from lepton.spec import FunctionSpec

PANIC_THRESHOLD = 2.0
MAX_STABLE_WINDOW = 60.0
MIN_STABLE_WINDOW = 2.0


@dataclass(frozen=True)
class Decision:
    desired: int
    panic: bool
    triggered: bool = field(default=False, compare=False)  # a panic-sized burst now: the caller times the panic from it


def stable_window(spec: FunctionSpec) -> float:
    return min(MAX_STABLE_WINDOW, max(MIN_STABLE_WINDOW, spec.scale_down_after))


def decide(
    spec: FunctionSpec,
    *,
    stable_avg: float,
    panic_avg: float,
    ready: int,
    idle_for: float,
    in_flight: int,
    was_panicking: bool,
    calm_for: float = 0.0,
) -> Decision:
    """How many replicas `spec` should have now. `calm_for`: seconds since a panic-sized burst
    was last seen; like Knative's KPA, panic mode (no scaling down) lasts a stable window after it."""
    target = spec.autoscale_target
    stable = math.ceil(stable_avg / target - 1e-9)
    panic_want = math.ceil(panic_avg / target - 1e-9)
    triggered = panic_want >= PANIC_THRESHOLD * max(ready, 1) and panic_want > ready
    panic = triggered or (was_panicking and stable < ready and calm_for < stable_window(spec))
    desired = max(stable, panic_want, ready) if panic else max(stable, panic_want)
    if in_flight > 0 or idle_for < spec.scale_down_after:
        desired = max(desired, 1)
    else:
        desired = 0
    return Decision(max(spec.min_scale, min(spec.max_scale, desired)), panic, triggered)


class ConcurrencyWindow:
    """In-flight samples (requests being served or held by the activator) over the stable window."""

    def __init__(self, tick: float, window: float) -> None:
        self.tick = tick
        self.samples: deque[float] = deque(maxlen=max(1, round(window / tick)))
        self.panic_len = max(1, round(window / 10 / tick))

    def add(self, in_flight: float) -> None:
        self.samples.append(in_flight)

    def raise_last(self, in_flight: float) -> None:
        """The latest sample becomes at least `in_flight` (for decisions between ticks)."""
        if self.samples:
            self.samples[-1] = max(self.samples[-1], in_flight)
        else:
            self.samples.append(in_flight)

    def averages(self) -> tuple[float, float]:
        if not self.samples:
            return 0.0, 0.0
        recent = list(self.samples)[-self.panic_len :]
        return sum(self.samples) / len(self.samples), sum(recent) / len(recent)


def capacity(spec: FunctionSpec | None) -> int:
    """How many requests the function's replicas can take at once, for the platform's own
    callers (broker deliveries, async jobs) to keep no more than that in flight. A removed
    function (None) gets a few: they fail fast with the router's 404."""
    if spec is None:
        return 4
    per_replica = spec.concurrency or max(1, math.ceil(spec.autoscale_target))
    return max(1, min(256, spec.max_scale * per_replica))
