"""Which triggers an event goes to, without testing each of thousands in turn.

A trigger that only matches events of one exact `type` is filed under that type; failing
that, under its exact `source`; the rest are tested one by one. An event is tested against
the triggers filed under its type and its source, and the rest, with the full filter
(filters.py), so the index changes how many triggers are looked at, never which match.
Cron and dead-letter triggers receive only events addressed to them and are not indexed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from lepton_platform.broker.triggers import Trigger


def required_value(trigger: Trigger, name: str) -> str | None:
    """The value attribute `name` must have for `trigger` to match, if it names one."""
    if trigger.attributes.get(name):  # "" means present with any value
        return trigger.attributes[name]
    return _required_in(trigger.filters, name)


def _required_in(entries: Iterable[Mapping[str, Any]], name: str) -> str | None:
    """Filters all have to match: an `exact` on `name` in any of them (or in an `all`
    nested in them) fixes the value; `any` and `not` do not."""
    for entry in entries:
        ((dialect, body),) = entry.items()
        if dialect == "exact" and isinstance(exact := body.get(name), str):
            return exact
        if dialect == "all" and (value := _required_in(body, name)) is not None:
            return value
    return None


class TriggerIndex:
    """An immutable snapshot: the broker builds a new one when its triggers change, so an
    ingest that took one keeps a consistent view while it writes."""

    def __init__(self, triggers: Iterable[Trigger]) -> None:
        self.by_type: dict[str, list[Trigger]] = {}
        self.by_source: dict[str, list[Trigger]] = {}
        self.rest: list[Trigger] = []
        for trigger in triggers:
            if not trigger.receives_broadcasts:
                continue
            if (kind := required_value(trigger, "type")) is not None:
                self.by_type.setdefault(kind, []).append(trigger)
            elif (source := required_value(trigger, "source")) is not None:
                self.by_source.setdefault(source, []).append(trigger)
            else:
                self.rest.append(trigger)

    def matching(self, attrs: Mapping[str, str]) -> list[str]:
        """The ids of the triggers the event matches."""
        candidates = (*self.by_type.get(attrs.get("type", ""), ()), *self.by_source.get(attrs.get("source", ""), ()), *self.rest)
        return [trigger.id for trigger in candidates if trigger.matches(attrs)]
