"""CloudEvents over HTTP, both content modes, through the `cloudevents` 2.x core API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v03.event import CloudEvent as CloudEventV03
from cloudevents.core.v1.event import CloudEvent

from lepton.runtime import tracing

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
# `BaseCloudEvent` is a typing Protocol that isinstance() cannot check: use the real classes.
EVENT_CLASSES = (CloudEvent, CloudEventV03)


class EventFormat(JSONFormat):
    """JSONFormat that keeps a binary-mode body as bytes unless it is JSON or text.

    The stock `read_data` returns `str` for any UTF-8 body, which corrupts binary payloads
    (images, protobuf) that happen to decode.
    """

    def read_data(self, body: bytes, datacontenttype: str | None) -> Any:
        ctype = (datacontenttype or self.DEFAULT_CONTENT_TYPE).split(";")[0].strip().lower()
        if self.JSON_CONTENT_TYPE_PATTERN.match(ctype) or ctype.startswith("text/"):
            return super().read_data(body, datacontenttype)
        return body or None


FORMAT = EventFormat()


class BadEvent(ValueError):
    """The request is not a valid CloudEvent; the message says which part."""


def is_cloudevent_request(headers: Mapping[str, str]) -> bool:
    ctype = headers.get("content-type", "")
    return "ce-specversion" in headers or ctype.startswith(STRUCTURED)


def parse(headers: Mapping[str, str], body: bytes) -> BaseCloudEvent:
    """Parse one CloudEvent in binary or structured mode, raising `BadEvent`."""
    message = ce_http.HTTPMessage(headers=dict(headers), body=body)
    try:
        if "ce-specversion" in headers:
            return ce_http.from_binary(message, FORMAT)
        if headers.get("content-type", "").startswith(STRUCTURED):
            return ce_http.from_structured(message, FORMAT)
    except BaseCloudEventException as exc:
        raise BadEvent(f"invalid CloudEvent: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise BadEvent(f"invalid CloudEvent: {type(exc).__name__}: {exc}") from None
    raise BadEvent(
        f"not a CloudEvent: send ce-specversion/ce-type/ce-source/ce-id headers (binary mode) or a '{STRUCTURED}' body (structured mode)"
    )


def traced(event: BaseCloudEvent) -> BaseCloudEvent:
    """The event with the current trace as its distributed-tracing extension (`traceparent`,
    `tracestate`), unless it has one already: the functions it triggers continue the trace."""
    carried = tracing.outgoing()
    attributes = event.get_attributes()
    if not carried or tracing.TRACEPARENT in attributes:
        return event
    return type(event)({**attributes, **carried}, event.get_data())


def to_binary(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    message = ce_http.to_binary(event, FORMAT)
    return message.headers, message.body


def to_structured(event: BaseCloudEvent) -> tuple[dict[str, str], bytes]:
    message = ce_http.to_structured(event, FORMAT)
    return message.headers, message.body
