"""Triggers: what makes a function run besides an HTTP call.

`on_event`, `on_cron` and `on_bucket` build the trigger objects listed in
`@lepton.function(triggers=[...])`. They are plain data: the platform (embedded broker or
Knative Trigger/PingSource) does the wiring.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lepton.errors import SpecError
from lepton.names import DNS_LABEL

# CloudEvents attribute names: lower-case letters and digits (the Knative webhook's rule).
ATTRIBUTE_NAME = re.compile(r"^[a-z][a-z0-9]*$")
FILTER_DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")
BUCKET_EVENTS = ("created", "deleted")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def spec_error(what: str, exc: ValidationError) -> SpecError:
    """Turn pydantic's multi-line report into one line that names the field."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return SpecError(f"{what}: " + "; ".join(parts))


class Options(_Model):
    """Options users build directly, like `lepton.Delivery(...)`: a bad value raises a
    one-line SpecError naming the field, not pydantic's multi-line report."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise spec_error(f"lepton.{type(self).__name__}", exc) from None


class Delivery(Options):
    """How the platform retries a trigger's deliveries (Knative `delivery` semantics).

    Example: `lepton.Delivery(retry=5, backoff="exponential", delay=0.5, dead_letter="on-failure")`
    retries 5 times waiting 0.5 s, 1 s, 2 s, ... and then sends the event to the function
    `on-failure` (or, when `dead_letter` is None, to the platform's dead-letter store).
    """

    retry: int = Field(default=3, ge=0, le=100)
    backoff: Literal["linear", "exponential"] = "exponential"
    delay: float = Field(default=0.2, gt=0, le=3600)
    timeout: float | None = Field(default=None, gt=0, le=3600)
    dead_letter: str | None = None

    @field_validator("dead_letter")
    @classmethod
    def _dead_letter_is_a_function(cls, value: str | None) -> str | None:
        if value is not None and not DNS_LABEL.match(value):
            raise ValueError(f"{value!r} is not a function name (DNS-1123 label)")
        return value

    def backoff_seconds(self, attempt: int) -> float:
        """Wait before retry number `attempt` (1-based), as Knative computes it."""
        if self.backoff == "linear":
            return self.delay * attempt
        return self.delay * 2.0 ** (attempt - 1)


class EventTrigger(_Model):
    """Run the function for CloudEvents on the broker that match every filter."""

    kind: Literal["event"] = "event"
    attributes: dict[str, str] = Field(default_factory=dict)
    filters: list[dict[str, Any]] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)

    @field_validator("attributes")
    @classmethod
    def _attribute_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _check_attribute_name(name)
        return value

    @field_validator("filters")
    @classmethod
    def _filter_dialects(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for entry in value:
            check_filter(entry)
        return value


def check_filter(entry: dict[str, Any]) -> None:
    """Validate one Knative `filters` entry: exactly one dialect, valid attribute names."""
    if not isinstance(entry, dict) or len(entry) != 1:
        raise ValueError(f"each filter must have exactly one dialect of {FILTER_DIALECTS}, got {entry!r}")
    ((dialect, body),) = entry.items()
    if dialect not in FILTER_DIALECTS:
        raise ValueError(f"unknown filter dialect {dialect!r}; use one of {FILTER_DIALECTS}")
    if dialect in ("exact", "prefix", "suffix"):
        if not isinstance(body, dict) or not body:
            raise ValueError(f"filter {dialect!r} needs a non-empty mapping of attribute to value")
        for name, val in body.items():
            _check_attribute_name(name)
            if not isinstance(val, str) or (dialect != "exact" and not val):
                raise ValueError(f"filter {dialect}.{name} needs a non-empty string value")
    elif dialect in ("all", "any"):
        if not isinstance(body, list) or not body:
            raise ValueError(f"filter {dialect!r} needs a non-empty list of filters")
        for nested in body:
            check_filter(nested)
    elif dialect == "not":
        check_filter(body)
    elif not isinstance(body, str) or not body.strip():
        raise ValueError("filter 'cesql' needs an expression string")


def _check_attribute_name(name: str) -> None:
    if not ATTRIBUTE_NAME.match(name) or len(name) > 20:
        raise ValueError(f"{name!r} is not a CloudEvents attribute name (lower-case a-z0-9, max 20)")


class CronTrigger(_Model):
    """Run the function on a schedule with a fixed CloudEvent payload (Knative PingSource)."""

    kind: Literal["cron"] = "cron"
    schedule: str
    timezone: str = "UTC"
    data: Any = None

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a valid cron expression (e.g. '*/5 * * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone (e.g. 'Europe/Paris')") from None
        return value


class BucketTrigger(_Model):
    """Run the function when objects in a bucket are created or deleted."""

    kind: Literal["bucket"] = "bucket"
    bucket: str
    events: tuple[Literal["created", "deleted"], ...] = ("created",)
    prefix: str = ""
    suffix: str = ""

    @field_validator("bucket")
    @classmethod
    def _valid_bucket(cls, value: str) -> str:
        from lepton.names import check_bucket_name

        return check_bucket_name(value)

    @field_validator("events")
    @classmethod
    def _some_events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError(f"give at least one of {BUCKET_EVENTS}")
        return tuple(dict.fromkeys(value))

    def event_types(self) -> list[str]:
        return [f"dev.lepton.bucket.object.{e}" for e in self.events]

    def as_filters(self) -> list[dict[str, Any]]:
        """The Knative `filters` that select this trigger's object events on a broker."""
        filters: list[dict[str, Any]] = [
            {"exact": {"source": f"/buckets/{self.bucket}"}},
            {"any": [{"exact": {"type": t}} for t in self.event_types()]},
        ]
        if self.prefix:
            filters.append({"prefix": {"subject": self.prefix}})
        if self.suffix:
            filters.append({"suffix": {"subject": self.suffix}})
        return filters


Trigger = Annotated[EventTrigger | CronTrigger | BucketTrigger, Field(discriminator="kind")]


M = TypeVar("M", bound=_Model)


def _build(model: type[M], what: str, **fields: Any) -> M:
    try:
        return model(**fields)
    except ValidationError as exc:
        raise spec_error(what, exc) from None


def on_event(
    type: str | None = None,
    *,
    source: str | None = None,
    filters: list[dict[str, Any]] | None = None,
    delivery: Delivery | None = None,
    **attributes: str,
) -> EventTrigger:
    """Trigger on broker events whose attributes match exactly (`type`, `source`, any extension).

    Example: `lepton.on_event(type="com.example.order", region="eu")`; add Knative-style
    `filters=[{"prefix": {"type": "com.example."}}]` for prefix, suffix, all, any and not.
    """
    exact = {k: v for k, v in {"type": type, "source": source, **attributes}.items() if v is not None}
    return _build(
        EventTrigger,
        "lepton.on_event",
        attributes=exact,
        filters=filters or [],
        delivery=delivery or Delivery(),
    )


def on_cron(schedule: str, *, data: Any = None, timezone: str = "UTC") -> CronTrigger:
    """Trigger on a cron schedule, evaluated in `timezone`; `data` is the event payload."""
    return _build(CronTrigger, "lepton.on_cron", schedule=schedule, data=data, timezone=timezone)


def on_bucket(bucket: str, *, events: list[str] | tuple[str, ...] = ("created",), prefix: str = "", suffix: str = "") -> BucketTrigger:
    """Trigger when objects under `prefix` (and ending in `suffix`) are created or deleted."""
    return _build(
        BucketTrigger,
        "lepton.on_bucket",
        bucket=bucket,
        events=tuple(events),
        prefix=prefix,
        suffix=suffix,
    )
