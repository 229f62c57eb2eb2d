"""Innermost layer: forward the request to the chosen replica over its Unix socket.

Pooled keep-alive connections per replica; the response streams through as it arrives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from lepton_platform.asgi import BodyTooLarge, Receive, Refusal, Scope, Send, read_body, send_json, send_refusal
from lepton_platform.tracing import TRACE_HEADERS

# Hop-by-hop headers, and the caller's credentials: a function never sees the platform token.
# The platform has the whole body before it forwards, so `Expect: 100-continue` stops here.
# What the platform sets itself is dropped too: the prefix a function is served under, the id
# and attempt of the async job a call runs for, and the trace context (checked: tracing.py).
DROP_REQUEST = {
    b"host",
    b"connection",
    b"keep-alive",
    b"transfer-encoding",
    b"authorization",
    b"content-length",
    b"te",
    b"upgrade",
    b"expect",
    b"x-forwarded-prefix",
    b"lepton-job-id",
    b"lepton-job-attempt",
    b"lepton-tag",
    *TRACE_HEADERS,
}
DROP_RESPONSE = {b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"}  # uvicorn sets its own


def replica_failed(fleet: Any, replica: Any, exc: BaseException) -> Refusal:
    ended = replica.why_ended()
    why = f": {ended}" if ended else f" ({type(exc).__name__})"
    return Refusal(502, f"function {fleet.name!r}: replica {replica.id} failed while handling the request{why}")


def no_answer(fleet: Any) -> Refusal:
    return Refusal(504, f"function {fleet.name!r} did not answer within {fleet.spec.timeout:g}s")


class ReplicaProxy:
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        replica = scope["lepton.replica"]
        fleet = scope["lepton.fleet"]
        if scope["type"] == "websocket":
            await proxy_websocket(scope, receive, send)
            return
        try:
            body = await read_body(receive, scope["lepton.limit"])
        except BodyTooLarge as exc:
            await send_json(send, 413, f"{exc} for function {fleet.name!r}")
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in DROP_REQUEST]
        headers.append(("x-forwarded-prefix", scope["lepton.prefix"]))
        headers += scope["lepton.trace"].headers()
        job = scope.get("lepton.job")
        if job is not None:
            headers += [("lepton-job-id", job[0]), ("lepton-job-attempt", str(job[1]))]
        try:
            async with asyncio.timeout(fleet.spec.timeout + 5):
                response = await replica.session.request(
                    scope["method"], scope["lepton.path"], data=body, headers=headers, allow_redirects=False
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            await send_refusal(send, no_answer(fleet) if isinstance(exc, TimeoutError) else replica_failed(fleet, replica, exc))
            return
        try:
            out = [(k.lower(), v) for k, v in response.raw_headers if k.lower() not in DROP_RESPONSE]
            out.append((b"x-lepton-revision", replica.revision.id.encode()))
            out.append((b"x-lepton-cold-start", b"1" if scope["lepton.cold"] else b"0"))
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            try:
                async for chunk in response.content.iter_any():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except aiohttp.ClientError:
                pass  # the replica died mid-stream; the caller sees a truncated body
            await send({"type": "http.response.body", "body": b""})
        finally:
            response.release()


NOT_SENT = {1005, 1006, 1015}  # close codes that say what happened; no endpoint may send them


def sendable(code: int | None, instead: int) -> int:
    """A close code to pass on: `instead` for none, or for one that must never be sent."""
    return instead if code is None or code in NOT_SENT else code


async def proxy_websocket(scope: Scope, receive: Receive, send: Send) -> None:
    """A WebSocket on the ASGI path (a Knative Service's, where the socket fast path does not
    go): one to the replica with the caller's headers, then messages both ways until either
    side closes."""
    replica, fleet = scope["lepton.replica"], scope["lepton.fleet"]
    await receive()  # websocket.connect
    # aiohttp makes the handshake's own headers; subprotocols pass as `protocols`.
    skip = DROP_REQUEST | {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions", b"sec-websocket-protocol"}
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in skip]
    headers.append(("x-forwarded-prefix", scope["lepton.prefix"]))
    headers += scope["lepton.trace"].headers()
    try:
        async with asyncio.timeout(fleet.spec.timeout + 5):
            upstream = await replica.session.ws_connect(
                scope["lepton.path"], headers=headers, protocols=scope.get("subprotocols", ()), autoclose=False, max_msg_size=0
            )
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status if exc.status >= 400 else 502  # a 101 that was not a valid handshake is the replica's fault
        await send_refusal(send, Refusal(status, f"function {fleet.name!r} refused the WebSocket: {exc.message}"), scope)
        return
    except (aiohttp.ClientError, TimeoutError) as exc:
        await send_refusal(send, no_answer(fleet) if isinstance(exc, TimeoutError) else replica_failed(fleet, replica, exc), scope)
        return
    await send({"type": "websocket.accept", "subprotocol": upstream.protocol})

    async def from_replica() -> None:
        async for message in upstream:
            if message.type == aiohttp.WSMsgType.TEXT:
                await send({"type": "websocket.send", "text": message.data})
            elif message.type == aiohttp.WSMsgType.BINARY:
                await send({"type": "websocket.send", "bytes": message.data})
        await send({"type": "websocket.close", "code": sendable(upstream.close_code, 1011)})

    async def from_caller() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=sendable(message.get("code"), 1000))
                return
            if message.get("text") is not None:
                await upstream.send_str(message["text"])
            else:
                await upstream.send_bytes(message.get("bytes") or b"")

    pumps = [asyncio.create_task(from_replica()), asyncio.create_task(from_caller())]
    try:
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await upstream.close()
