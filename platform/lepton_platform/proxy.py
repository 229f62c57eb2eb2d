"""Innermost layer: forward the request to the chosen replica over its Unix socket.

Pooled keep-alive connections per replica; the response streams through as it arrives.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from lepton_platform.asgi import BodyTooLarge, Receive, Refusal, Scope, Send, read_body, send_json, send_refusal

# Hop-by-hop headers, and the caller's credentials: a function never sees the platform token.
# The platform has the whole body before it forwards, so `Expect: 100-continue` stops here.
DROP_REQUEST = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"authorization", b"content-length", b"te",
                b"upgrade", b"expect"}
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
        try:
            body = await read_body(receive, scope["lepton.limit"])
        except BodyTooLarge as exc:
            await send_json(send, 413, f"{exc} for function {fleet.name!r}")
            return
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in DROP_REQUEST]
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
