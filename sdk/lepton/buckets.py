"""Storage buckets from function code, the same on a laptop and on the platform.

    images = lepton.bucket("images")
    images.put("in/cat.png", png_bytes)
    with images.open("in/cat.png") as f:        # a binary file, streamed
        header = f.read(8)
    for obj in images.list(prefix="in/"):
        print(obj["key"], obj["size"])
    link = images.url("in/cat.png", expires=600)  # works without a token until it expires

Inside a deployed function the platform gives the replica a token scoped to the buckets the
function declared (`buckets=[...]`); any other bucket answers 403 naming it.
"""

from __future__ import annotations

import io
import mimetypes
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from lepton.client import Client
from lepton.errors import BucketError, InvocationError
from lepton.names import check_bucket_name, check_object_key

_client: Client | None = None


def _default_client() -> Client:
    global _client
    if _client is None:
        _client = Client()
    return _client


def _checked(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise BucketError(str(exc)) from None


class _StreamReader(io.RawIOBase):
    """A read-only binary file over a streamed HTTP body."""

    def __init__(self, chunks: Iterator[bytes], info: dict[str, Any]) -> None:
        self._chunks = chunks
        self._pending = b""
        self.info = info

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = chunk
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class Bucket:
    """One bucket on the platform: store, read, list and delete its objects, and hand out
    signed URLs. Making one sends nothing (the name is checked here); each method is one
    request, or one per page. `lepton.bucket(name)` makes one.

    Example:
        images = lepton.bucket("images")
        images.put("in/cat.png", Path("cat.png"))
        images.exists("in/cat.png")    # True
    """

    def __init__(self, name: str, client: Client | None = None) -> None:
        self.name = _checked(check_bucket_name, name)
        self._client = client

    def __repr__(self) -> str:
        return f"lepton.bucket({self.name!r})"

    @property
    def client(self) -> Client:
        """The client requests go through: the one given, else one shared by every bucket made
        without one, for LEPTON_URL and LEPTON_TOKEN (in a replica: its own platform and token)."""
        return self._client or _default_client()

    def object_path(self, key: str) -> str:
        """The API path of object `key` (checked, then quoted), for a request this class does
        not make itself, such as a streamed upload with progress (`lepton bucket put`)."""
        return f"/v1/buckets/{self.name}/objects/{quote(_checked(check_object_key, key), safe='/')}"

    def put(self, key: str, data: bytes | str | IO[bytes] | Path, content_type: str | None = None) -> dict[str, Any]:
        """Store `data` (bytes, text, a binary file or a path, streamed) at `key`; returns its info."""
        content_type = content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"
        headers = {"content-type": content_type}
        info: dict[str, Any]
        if isinstance(data, Path):
            with data.open("rb") as fh:
                info = self.client.request("PUT", self.object_path(key), content=fh, headers=headers).json()
            return info
        if isinstance(data, str):
            data = data.encode()
        info = self.client.request("PUT", self.object_path(key), content=data, headers=headers).json()
        return info

    def get(self, key: str) -> bytes:
        """The whole object in memory; `open` streams one too large for that."""
        return self.client.request("GET", self.object_path(key)).content

    @contextmanager
    def open(self, key: str, chunk_size: int = 1 << 20) -> Iterator[io.BufferedReader[_StreamReader]]:
        """The object as a binary file read from the network as you go (never whole in memory)."""
        with self.client.open("GET", self.object_path(key)) as response:
            info = {
                "size": int(response.headers.get("content-length", 0)),
                "etag": response.headers.get("etag", "").strip('"'),
                "content_type": response.headers.get("content-type", ""),
            }
            with io.BufferedReader(_StreamReader(response.iter_bytes(chunk_size), info), chunk_size) as reader:
                yield reader

    def head(self, key: str) -> dict[str, Any]:
        """The object's key, size, etag and content type, without reading its body; a missing
        object raises `InvocationError` 404."""
        r = self.client.request("HEAD", self.object_path(key))
        return {
            "key": key,
            "size": int(r.headers["content-length"]),
            "etag": r.headers["etag"].strip('"'),
            "content_type": r.headers.get("content-type", ""),
        }

    def exists(self, key: str) -> bool:
        """Whether the bucket holds `key` (one HEAD request); errors other than 404 are raised."""
        try:
            self.head(key)
            return True
        except InvocationError as exc:
            if exc.status_code == 404:
                return False
            raise

    def list(self, prefix: str = "", page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every object under `prefix`, in key order, fetched a page at a time."""
        after = ""
        while True:
            page = self.client.request(
                "GET", f"/v1/buckets/{self.name}/objects", params={"prefix": prefix, "start_after": after, "limit": page_size}
            ).json()
            yield from page["objects"]
            if not page["next"]:
                return
            after = page["next"]

    def delete(self, key: str) -> None:
        """Remove the object at `key`; functions with `lepton.on_bucket(..., events=["deleted"])`
        on this bucket then run."""
        self.client.request("DELETE", self.object_path(key))

    def url(self, key: str, expires: int = 3600, method: str = "GET") -> str:
        """A URL for this one object that needs no token, valid for `expires` seconds."""
        body = {"key": _checked(check_object_key, key), "expires": expires, "method": method}
        url: str = self.client.request("POST", f"/v1/buckets/{self.name}/urls", json=body).json()["url"]
        return url


def bucket(name: str, client: Client | None = None) -> Bucket:
    """A handle on bucket `name` on the platform in LEPTON_URL (in a replica: its own platform)."""
    return Bucket(name, client)
