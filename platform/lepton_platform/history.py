"""The last hour of each function's invocations, a minute at a time, for the console's charts.

Recorded on the invocation path into the current minute's slot: a clock read, a dict lookup,
a few additions and a bisect, and one small allocation per function per minute it is called.
Nothing runs between calls, so a thousand functions at zero cost nothing; a function never
called has no slots at all. Reading (a console page) merges at most sixty slots. A platform
up for less than an hour has nothing older to show: the charts then span the time since it
started (at least a quarter of an hour), so its first minutes are not a sliver at the edge.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from time import time

MINUTES = 60
SHORTEST = 15  # minutes a chart spans at least


class Minute:
    """One function's invocations in one wall-clock minute; `latency` counts per bound, then +Inf."""

    __slots__ = ("minute", "requests", "errors", "cold", "latency")

    def __init__(self, minute: int, buckets: int) -> None:
        self.minute = minute
        self.requests = 0
        self.errors = 0
        self.cold = 0
        self.latency = [0] * buckets


@dataclass(frozen=True)
class Summary:
    """A function's last hour: totals, latency quantiles (seconds; None without calls) and one
    value per minute, oldest first, for the charts."""

    requests: int
    errors: int
    cold: int
    p50: float | None
    p99: float | None
    per_minute: dict[str, list[float]]  # as many minutes as the charts span


class History:
    """Per function, its last `minutes` one-minute slots, in a ring indexed by minute."""

    def __init__(self, bounds: tuple[float, ...], minutes: int = MINUTES) -> None:
        self.bounds = bounds
        self.minutes = minutes
        self.started = int(time()) // 60
        self._current: dict[str, Minute] = {}  # each function's latest minute: the one a call adds to
        self._slots: dict[str, list[Minute | None]] = {}

    def record(self, function: str, error: bool, seconds: float, cold: bool) -> None:
        minute = int(time()) // 60
        slot = self._current.get(function)
        if slot is None or slot.minute != minute:
            slot = self._start(function, minute)
        slot.requests += 1
        if error:
            slot.errors += 1
        if cold:
            slot.cold += 1
        slot.latency[bisect_left(self.bounds, seconds)] += 1

    def _start(self, function: str, minute: int) -> Minute:
        slots = self._slots.get(function)
        if slots is None:
            slots = self._slots[function] = [None] * self.minutes
        slot = slots[minute % self.minutes] = self._current[function] = Minute(minute, len(self.bounds) + 1)
        return slot

    def forget(self, function: str) -> None:
        self._current.pop(function, None)
        self._slots.pop(function, None)

    def summary(self, function: str, now: float | None = None) -> Summary:
        """The hour up to the minute of `now` (default: the clock), or less since the start."""
        last = int(time() if now is None else now) // 60
        span = min(self.minutes, max(SHORTEST, last - self.started + 1))
        first = last - span + 1
        window: list[Minute | None] = [None] * span
        for slot in self._slots.get(function, ()):
            if slot is not None and first <= slot.minute <= last:
                window[slot.minute - first] = slot
        latency = [0] * (len(self.bounds) + 1)
        series: dict[str, list[float]] = {"requests": [], "errors": [], "cold": [], "p50": [], "p99": []}
        for slot in window:
            if slot is None:
                for values in series.values():
                    values.append(0)
                continue
            latency = [a + b for a, b in zip(latency, slot.latency)]
            series["requests"].append(slot.requests)
            series["errors"].append(slot.errors)
            series["cold"].append(slot.cold)
            series["p50"].append(quantile(0.5, slot.latency, self.bounds) or 0)
            series["p99"].append(quantile(0.99, slot.latency, self.bounds) or 0)
        return Summary(
            int(sum(series["requests"])),
            int(sum(series["errors"])),
            int(sum(series["cold"])),
            quantile(0.5, latency, self.bounds),
            quantile(0.99, latency, self.bounds),
            series,
        )


def quantile(q: float, counts: list[int], bounds: tuple[float, ...]) -> float | None:
    """Prometheus' `histogram_quantile` over one histogram's bucket counts (not cumulative):
    linear within the bucket the rank falls in; the highest bound for the +Inf bucket."""
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == len(bounds):
                return bounds[-1]
            lower = bounds[index - 1] if index else 0.0
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]
