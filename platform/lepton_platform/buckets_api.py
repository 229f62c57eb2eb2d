"""`/v1/buckets/...`: buckets and objects over HTTP, streamed both ways, for three kinds of
caller: the admin token (everything), a revision's scoped token (only the buckets its function
declared), and a signed URL (one object, one method, until it expires).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import mimetypes
import time
from email.utils import formatdate
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from lepton.errors import BucketError
from lepton.names import check_object_key
from lepton_platform.buckets import CannotStore, ObjectInfo
from lepton_platform.buckets.s3 import s3_event_records
from lepton_platform.credentials import MAX_URL_SECONDS
from lepton_platform.dependencies import Caller, PlatformDep
from lepton_platform.errors import Denied

WRITE_SIZE = 1 << 20

router = APIRouter(prefix="/v1")


class UrlRequest(BaseModel):
    key: str
    expires: int = Field(3600, ge=1, le=MAX_URL_SECONDS, description="seconds the URL stays valid")
    method: Literal["GET", "PUT"] = "GET"


def valid_key(key: str) -> str:
    try:
        return check_object_key(key)
    except ValueError as exc:
        raise BucketError(str(exc)) from None


def object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "etag": f'"{info.etag}"',
        "content-length": str(info.size),
        "last-modified": formatdate(info.modified, usegmt=True),
        "content-type": info.content_type or "application/octet-stream",
    }


@router.get("/buckets", summary="List buckets", tags=["buckets"])
async def list_buckets(caller: Caller, platform: PlatformDep) -> list[dict[str, Any]]:
    found = await asyncio.to_thread(platform.storage.list_buckets)
    return [b.to_json() for b in found if caller.buckets is None or b.name in caller.buckets]


@router.put("/buckets/{bucket}", summary="Create a bucket (idempotent)", tags=["buckets"])
async def create_bucket(bucket: str, caller: Caller, response: Response, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("create buckets")
    created = await asyncio.to_thread(platform.storage.create_bucket, caller.bucket(bucket))
    response.status_code = 201 if created else 200
    return {"bucket": bucket, "created": created}


@router.delete("/buckets/{bucket}", summary="Delete a bucket; refuses a non-empty one unless force", tags=["buckets"])
async def delete_bucket(bucket: str, caller: Caller, platform: PlatformDep, force: bool = False) -> dict[str, Any]:
    caller.admin("delete buckets")
    await asyncio.to_thread(platform.storage.delete_bucket, caller.bucket(bucket), force=force)
    return {"bucket": bucket, "deleted": True}


@router.get("/buckets/{bucket}/objects", summary="List objects by prefix, in key order, a page at a time", tags=["buckets"])
async def list_objects(
    bucket: str,
    caller: Caller,
    platform: PlatformDep,
    prefix: str = "",
    start_after: str = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 1000,
) -> dict[str, Any]:
    found = await asyncio.to_thread(platform.storage.list, caller.bucket(bucket), prefix, start_after, limit)
    return {"bucket": bucket, "objects": [o.to_json() for o in found], "next": found[-1].key if len(found) == limit else None}


@router.put("/buckets/{bucket}/objects/{key:path}", status_code=201, summary="Upload an object (streamed)", tags=["buckets"])
async def put_object(bucket: str, key: str, request: Request, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.bucket(bucket)
    valid_key(key)
    storage, limit = platform.storage, platform.config.limits.max_object_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413 if declared.isdigit() else 400, f"object of {declared} bytes is over the {limit} byte limit")
    content_type = request.headers.get("content-type") or mimetypes.guess_type(key)[0] or "application/octet-stream"
    try:
        upload = await asyncio.to_thread(storage.upload, bucket, key, content_type)
    except OSError as exc:
        raise CannotStore(f"the platform could not store {bucket}/{key} ({exc.strerror or exc})") from exc
    received = 0
    buffer = bytearray()
    writing: asyncio.Future[None] | None = None
    try:
        # Hashing and writing 1 MiB at a time in a worker thread (both release the GIL)
        # overlaps with receiving the next MiB.
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise HTTPException(413, f"object is over the {limit} byte limit")
            buffer += chunk
            if len(buffer) >= WRITE_SIZE:
                if writing:
                    await writing
                writing = asyncio.ensure_future(asyncio.to_thread(upload.write, bytes(buffer)))
                buffer.clear()
        if writing:
            await writing
        if declared is not None and received != int(declared):
            raise HTTPException(400, f"body ended after {received} of {declared} bytes; nothing was stored")
        upload.write(bytes(buffer))
        info = await asyncio.to_thread(upload.commit)
    except BaseException as exc:
        if writing and not writing.done():
            await asyncio.wait([writing])
        upload.abort()
        if isinstance(exc, ClientDisconnect):
            raise HTTPException(400, f"upload cut off after {received} bytes; nothing was stored") from None
        if isinstance(exc, OSError):
            raise CannotStore(f"the platform could not store {bucket}/{key} ({exc.strerror or exc}); nothing was stored") from exc
        raise
    return {"bucket": bucket, **info.to_json()}


@router.head("/buckets/{bucket}/objects/{key:path}", summary="An object's size, etag and content type", tags=["buckets"])
async def head_object(bucket: str, key: str, caller: Caller, platform: PlatformDep) -> Response:
    caller.bucket(bucket)
    info = await asyncio.to_thread(platform.storage.head, bucket, valid_key(key))
    return Response(headers=object_headers(info))


@router.get("/buckets/{bucket}/objects/{key:path}", summary="Download an object (streamed)", tags=["buckets"])
async def get_object(bucket: str, key: str, caller: Caller, platform: PlatformDep) -> Response:
    caller.bucket(bucket)
    valid_key(key)
    info, chunks = await asyncio.to_thread(platform.storage.read, bucket, key)
    headers = object_headers(info)
    # An object is someone's data, never a page of the platform's origin (the console's): a
    # browser opening an uploaded HTML file through a signed URL runs none of it.
    headers.update({"content-security-policy": "sandbox", "x-content-type-options": "nosniff"})
    return StreamingResponse(chunks, media_type=headers.pop("content-type"), headers=headers)


@router.delete("/buckets/{bucket}/objects/{key:path}", summary="Delete an object", tags=["buckets"])
async def delete_object(bucket: str, key: str, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.bucket(bucket)
    valid_key(key)
    await asyncio.to_thread(platform.storage.delete, bucket, key)
    return {"bucket": bucket, "key": key, "deleted": True}


@router.post("/buckets/{bucket}/urls", summary="A signed URL for one object that works without a token", tags=["buckets"])
async def signed_url(bucket: str, body: UrlRequest, request: Request, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.bucket(bucket)
    valid_key(body.key)
    expires = int(time.time()) + body.expires
    signature = platform.credentials.url_signature(body.method, bucket, body.key, expires)
    url = request.url_for("get_object", bucket=bucket, key=body.key).include_query_params(expires=expires, signature=signature)
    return {"url": str(url), "method": body.method, "expires_at": expires}


@router.get("/sources/s3", summary="The URL to subscribe to the buckets' S3 event notifications", tags=["sources"])
async def s3_source(request: Request, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("read the notification endpoint")
    url = request.url_for("s3_notification").include_query_params(secret=platform.credentials.notification_secret())
    return {"url": str(url), "backend": platform.config.storage.backend, "notifications": platform.config.storage.s3.notifications}


@router.post(
    "/sources/s3/notifications", summary="Receives S3 event notifications (SNS http or direct)", tags=["sources"], include_in_schema=False
)
async def s3_notification(request: Request, platform: PlatformDep, secret: str = "") -> Response:
    if not hmac.compare_digest(secret.encode(), platform.credentials.notification_secret().encode()):
        raise Denied("wrong or missing notification secret")
    try:
        message = json.loads(await request.body())
    except ValueError:
        raise HTTPException(400, "notification body is not JSON") from None
    kind = request.headers.get("x-amz-sns-message-type") or message.get("Type")
    if kind == "SubscriptionConfirmation":
        async with httpx.AsyncClient(timeout=10) as http:
            await http.get(message["SubscribeURL"])
        return Response(status_code=200)
    if kind == "Notification":
        try:
            message = json.loads(message.get("Message", "{}"))
        except ValueError:
            raise HTTPException(400, "SNS Message is not an S3 event notification") from None
    prefix = platform.config.storage.s3.bucket_prefix
    events = s3_event_records(message, prefix)
    await asyncio.to_thread(platform.storage.outbox.put, events)
    return Response(json.dumps({"accepted": len(events)}), status_code=200, media_type="application/json")
