"""Small raw-ASGI helpers shared by the request-path layers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

Scope = dict[str, Any]
Message = MutableMapping[str, Any]  # as Starlette spells it, so that its apps take our `send`
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Refusal:
    """A request the platform answers itself with `{"detail": ...}`, whichever path it came by."""

    status: int
    detail: str
    headers: tuple[tuple[bytes, bytes], ...] = ()


def error_body(detail: Any) -> bytes:
    return json.dumps({"detail": detail}).encode()


async def send_refusal(send: Send, refusal: Refusal, scope: Scope | None = None) -> None:
    """The refusal as a response; for a WebSocket, as the answer to its handshake (ASGI's
    denial response, which the platform's uvicorn supports)."""
    if scope is not None and scope["type"] == "websocket":
        body = error_body(refusal.detail)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": refusal.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *refusal.headers],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send_json(send, refusal.status, refusal.detail, list(refusal.headers))


async def send_json(send: Send, status: int, detail: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = error_body(detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyTooLarge(Exception):
    """The request body is over the limit; the message says which."""


async def read_body(receive: Receive, limit: int | None = None) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise BodyTooLarge(f"request body is over the {limit} byte limit")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def declared_too_large(scope: Scope, limit: int) -> str | None:
    """Why a request's Content-Length is refused before its body is read, or None."""
    return too_large(header(scope, b"content-length"), limit)


def too_large(declared: str | None, limit: int) -> str | None:
    if declared and declared.isdigit() and int(declared) > limit:
        return f"request body of {declared} bytes is over the {limit} byte limit"
    return None


def header(scope: Scope, name: bytes) -> str | None:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class ResponseTooLarge(Exception):
    """A response body over the limit given to `call`."""


async def call(
    app: ASGIApp,
    method: str,
    target: str,
    headers: dict[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    scope: dict[str, Any] | None = None,
    limit: int | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app in this process (no socket); returns status, headers
    and the whole body (ResponseTooLarge past `limit` bytes). The broker delivers events and
    the job runner runs jobs through the request path this way. `target` is as on the wire
    (percent-encoded path, then the query); `scope` adds to the scope."""
    raw, _, query = target.partition("?")
    pairs = headers.items() if isinstance(headers, dict) else headers
    request: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw),
        "raw_path": raw.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "root_path": "",
        "client": None,
        "server": None,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs],
        "lepton.internal": True,  # the platform calling itself: not held to a function's queue limit
        **(scope or {}),
    }
    sent = False
    status = 500
    response_headers: dict[str, str] = {}
    chunks: list[bytes] = []
    size = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
            response_headers.update((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message.get("headers", []))
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            size += len(chunk)
            if limit is not None and size > limit:
                raise ResponseTooLarge(f"the response is over the {limit} byte limit")
            chunks.append(chunk)

    await app(request, receive, send)
    return status, response_headers, b"".join(chunks)
