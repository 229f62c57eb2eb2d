"""`POST /v1/events`, the CloudEvents ingress, as a plain ASGI endpoint.

It is the platform's hottest write path, so it skips FastAPI's per-request machinery (about
half a millisecond here): auth, a size limit, parsing, then 202 once the broker has stored
the events durably. Its OpenAPI entry is added to the API's schema by `document`.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any

from lepton.runtime import tracing
from lepton.runtime.events import BATCH, FORMAT, STRUCTURED, BadEvent, parse
from lepton_platform.asgi import BodyTooLarge, Receive, Scope, Send, declared_too_large, header, read_body, send_json
from lepton_platform.auth import identify
from lepton_platform.broker.log import Event
from lepton_platform.errors import Denied

if TYPE_CHECKING:
    from lepton_platform.service import Platform

PATH = "/v1/events"
REQUIRED = ("specversion", "id", "source", "type")
ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")


def _check_attributes(names: Any, where: str) -> None:
    missing = [a for a in REQUIRED if a not in names]
    if missing:
        raise BadEvent(f"{where}missing required attribute{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    bad = [n for n in names if n not in ("data", "data_base64") and not ATTRIBUTE.match(n)]
    if bad:
        raise BadEvent(f"{where}attribute name {bad[0]!r} is invalid: use 1-20 lower-case letters and digits")


def read_events(headers: dict[str, str], body: bytes) -> list[Event]:
    """Binary, structured or batch mode into broker events; `BadEvent` says what is wrong."""
    ctype = headers.get("content-type", "")
    if ctype.startswith(BATCH):
        try:
            items = json.loads(body)
        except ValueError as exc:
            raise BadEvent(f"batch is not JSON: {exc}") from None
        if not isinstance(items, list) or not items:
            raise BadEvent("a batch must be a non-empty JSON array of structured events")
        events = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadEvent(f"event {i} of the batch is not a JSON object")
            _check_attributes(item, f"event {i} of the batch: ")
            try:
                events.append(Event.from_cloudevent(FORMAT.read(None, json.dumps(item).encode())))
            except Exception as exc:
                raise BadEvent(f"event {i} of the batch: {exc}") from None
        return events
    if "ce-specversion" in headers:
        _check_attributes({k[3:] for k in headers if k.startswith("ce-")}, "")
    elif ctype.startswith(STRUCTURED):
        try:
            item = json.loads(body)
        except ValueError as exc:
            raise BadEvent(f"structured event is not JSON: {exc}") from None
        if not isinstance(item, dict):
            raise BadEvent("a structured event must be a JSON object")
        _check_attributes(item, "")
    return [Event.from_cloudevent(parse(headers, body))]


def carry_trace(event: Event, caller: tracing.TraceParent) -> Event:
    """The event with the request's trace as its distributed-tracing extension, unless it has
    one: a function that sends events over HTTP (lepton.Client) sends only the header."""
    if tracing.TRACEPARENT in event.attrs:
        return event
    data = json.loads(event.body)
    data[tracing.TRACEPARENT] = caller.header()
    if caller.state:
        data[tracing.TRACESTATE] = caller.state
    return Event.from_json(data)


class Ingress:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.limit = platform.config.limits.max_event_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            identify(self.platform, header(scope, b"authorization"), keys=True)  # a caller with a key may send events
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            too_large = declared_too_large(scope, self.limit)
            if too_large:
                raise BodyTooLarge(too_large)
            events = read_events(headers, await read_body(receive, self.limit))
            caller = tracing.parse(headers.get(tracing.TRACEPARENT), headers.get(tracing.TRACESTATE))
            if caller is not None:
                events = [carry_trace(event, caller) for event in events]
        except Denied as exc:
            await send_json(send, exc.status, str(exc), [(k.encode(), v.encode()) for k, v in (exc.headers or {}).items()])
            return
        except BodyTooLarge as exc:
            await send_json(send, 413, str(exc))
            return
        except BadEvent as exc:
            await send_json(send, 400, str(exc).replace("invalid CloudEvent: ", ""))
            return
        except ConnectionResetError:
            return
        try:
            fresh = await self.platform.broker.publish(events)
        except (OSError, sqlite3.Error) as exc:
            await send_json(send, 503, f"events not stored ({exc}); nothing was accepted, send them again")
            return
        accepted = sum(fresh)
        body = json.dumps({"accepted": accepted, "duplicates": len(fresh) - accepted, "ids": [e.id for e in events]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 202,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the ingress to the API's OpenAPI schema."""
    schema.setdefault("paths", {})[PATH] = {
        "post": {
            "tags": ["events"],
            "operationId": "ingest_events",
            "summary": "Accept CloudEvents (binary, structured or batch); 202 once they are stored durably",
            "description": "Binary mode (ce-* headers), structured mode (application/cloudevents+json) or a batch "
            "(application/cloudevents-batch+json). Duplicates (same source and id) are accepted once. A valid "
            "`traceparent` header becomes the distributed-tracing extension of events that have none.",
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {"schema": {"type": "object"}},
                    "application/cloudevents-batch+json": {"schema": {"type": "array"}},
                    "*/*": {"schema": {}},
                },
            },
            "responses": {
                "202": {
                    "description": "Stored durably",
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "accepted": {"type": "integer"},
                                    "duplicates": {"type": "integer"},
                                    "ids": {"type": "array", "items": {"type": "string"}},
                                },
                            }
                        }
                    },
                },
                "400": {"description": "Not a valid CloudEvent; the detail names the problem"},
                "401": {"description": "No token"},
                "403": {"description": "Wrong token"},
                "413": {"description": "Body over the limit"},
            },
        }
    }
    return schema
