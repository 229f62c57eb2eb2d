"""The buckets pages: browse a bucket by prefix; downloads and uploads go through signed URLs
(`/v1/buckets/...?signature=`), so the bytes take the API's streamed path, not the console's."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from lepton.names import check_bucket_name, check_object_key

if TYPE_CHECKING:
    from lepton_platform.console.app import Console

OBJECTS_SHOWN = 200
DOWNLOAD_SECONDS = 300
UPLOAD_SECONDS = 900


def checked(bucket: str, key: str | None = None) -> None:
    try:
        check_bucket_name(bucket)
        if key is not None:
            check_object_key(key)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def routes(console: Console) -> list[Route]:
    storage, credentials = console.platform.storage, console.platform.credentials

    def signed(method: str, bucket: str, key: str, seconds: int) -> str:
        expires = int(time.time()) + seconds
        signature = credentials.url_signature(method, bucket, key, expires)
        return f"/v1/buckets/{bucket}/objects/{quote(key, safe='/')}?expires={expires}&signature={signature}"

    async def listing(request: Request) -> Response:
        session = console.viewer(request)
        return console.render(request, "buckets.html", session, buckets=await asyncio.to_thread(storage.list_buckets))

    async def browse(request: Request) -> Response:
        session = console.viewer(request)
        bucket = request.path_params["bucket"]
        checked(bucket)
        prefix, after = request.query_params.get("prefix", ""), request.query_params.get("after", "")
        found = await asyncio.to_thread(storage.list, bucket, prefix, after, OBJECTS_SHOWN)
        more = found[-1].key if len(found) == OBJECTS_SHOWN else None
        return console.render(request, "bucket.html", session, bucket=bucket, under=prefix, objects=found, more=more)

    async def download(request: Request) -> Response:
        console.reader(request)
        bucket, key = request.path_params["bucket"], request.query_params.get("key", "")
        checked(bucket, key)
        return RedirectResponse(signed("GET", bucket, key, DOWNLOAD_SECONDS), status_code=303)

    async def upload(request: Request) -> Response:
        """The URL the page's script PUTs a chosen file to."""
        await console.actor(request)
        bucket = request.path_params["bucket"]
        try:
            key = (await request.json())["key"]
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, 'send {"key": "..."} as JSON') from None
        checked(bucket, key if isinstance(key, str) else "")
        return JSONResponse({"url": signed("PUT", bucket, key, UPLOAD_SECONDS), "expires_in": UPLOAD_SECONDS})

    return [
        Route("/ui/buckets", listing, methods=["GET"]),
        Route("/ui/buckets/{bucket}", browse, methods=["GET"]),
        Route("/ui/buckets/{bucket}/download", download, methods=["GET"]),
        Route("/ui/buckets/{bucket}/uploads", upload, methods=["POST"]),
    ]
