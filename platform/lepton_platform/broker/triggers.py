"""Triggers as the broker keeps them: who gets which events, and with what delivery policy.

They come from a function's `triggers=[...]` when a revision is routed (ids derived from the
trigger's content, so redeploying the same triggers keeps their pending deliveries) and from
the API. A trigger with a `dead_letter` function gets a companion trigger that only ever
receives that trigger's dead letters.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lepton.spec import FunctionSpec
from lepton.triggers import BucketTrigger, CronTrigger, Delivery, EventTrigger
from lepton_platform.broker.filters import matches

SPEC, API, DEAD_LETTER, FORWARD = "spec", "api", "dead-letter", "forward"


@dataclass(frozen=True)
class Trigger:
    id: str
    function: str
    origin: str = API
    kind: str = "event"
    attributes: Mapping[str, str] = field(default_factory=dict)
    filters: tuple[Mapping[str, Any], ...] = ()
    delivery: Delivery = field(default_factory=Delivery)
    cron: CronTrigger | None = None
    owner: str = ""

    @property
    def declared_by(self) -> str:
        """The function whose spec or API call made this trigger (a dead-letter companion
        delivers to another function but belongs to the first)."""
        return self.owner or self.function

    @property
    def receives_broadcasts(self) -> bool:
        """Cron and dead-letter triggers receive only events addressed to them; a forward
        (to a Knative Broker) takes every event."""
        return self.kind in ("event", "bucket", FORWARD)

    def matches(self, attrs: Mapping[str, str]) -> bool:
        return self.receives_broadcasts and matches(self.attributes, list(self.filters), attrs)

    def to_json(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "function": self.function,
            "owner": self.declared_by,
            "origin": self.origin,
            "kind": self.kind,
            "attributes": dict(self.attributes),
            "filters": list(self.filters),
            "delivery": self.delivery.model_dump(),
        }
        if self.cron is not None:
            out["cron"] = self.cron.model_dump()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trigger:
        cron = CronTrigger.model_validate(data["cron"]) if data.get("cron") else None
        return cls(
            data["id"],
            data["function"],
            data["origin"],
            data["kind"],
            dict(data["attributes"]),
            tuple(data["filters"]),
            Delivery(**data["delivery"]),
            cron,
            data.get("owner", ""),
        )


def _id(function: str, content: Any) -> str:
    return f"{function}-{hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:10]}"


def from_spec(spec: FunctionSpec) -> list[Trigger]:
    """The broker's triggers for a function's `triggers=[...]`, dead-letter companions included."""
    out: list[Trigger] = []
    for trig in spec.triggers:
        content = trig.model_dump(mode="json")
        tid = _id(spec.name, content)
        if isinstance(trig, EventTrigger):
            out.append(Trigger(tid, spec.name, SPEC, "event", dict(trig.attributes), tuple(trig.filters), trig.delivery))
        elif isinstance(trig, BucketTrigger):
            out.append(Trigger(tid, spec.name, SPEC, "bucket", {}, tuple(trig.as_filters())))
        else:
            out.append(Trigger(tid, spec.name, SPEC, "cron", cron=trig))
    return out + [dead_letter_companion(t) for t in out if t.delivery.dead_letter]


def dead_letter_companion(trigger: Trigger) -> Trigger:
    return Trigger(f"{trigger.id}-dlq", trigger.delivery.dead_letter or "", DEAD_LETTER, "dead-letter", owner=trigger.function)


def from_request(function: str, attributes: dict[str, str], filters: list[dict[str, Any]], delivery: Delivery) -> list[Trigger]:
    """A trigger created through the API (validated like the decorator's `on_event`)."""
    trig = EventTrigger(attributes=attributes, filters=filters, delivery=delivery)
    created = Trigger(
        _id(function, ["api", trig.model_dump(mode="json")]),
        function,
        API,
        "event",
        dict(trig.attributes),
        tuple(trig.filters),
        trig.delivery,
    )
    return [created] + ([dead_letter_companion(created)] if delivery.dead_letter else [])
