"""What every object store backend offers, so the bucket API and the SDK never see which one
runs: the embedded local store or S3 (AWS, MinIO, Ceph RGW) through boto3.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from lepton.errors import LeptonError

if TYPE_CHECKING:
    from lepton_platform.outbox import Outbox

CHUNK = 1 << 20


class StorageError(LeptonError):
    status = 400


class NoSuchBucket(StorageError):
    status = 404

    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} not found; `lepton bucket create {bucket}` makes it")


class NoSuchKey(StorageError):
    status = 404

    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"object {key!r} not found in bucket {bucket!r}")


class CannotStore(StorageError):
    """The platform's own disk refused an upload (full, read-only): its fault, not the caller's."""

    status = 507


class BucketNotEmpty(StorageError):
    status = 409

    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} is not empty; delete its objects first or force it")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str
    modified: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Upload(abc.ABC):
    """An object being written: nothing is visible until `commit`; `abort` leaves no trace."""

    @abc.abstractmethod
    def write(self, chunk: bytes) -> None: ...

    @abc.abstractmethod
    def commit(self) -> ObjectInfo:
        """Make the object visible at once (never torn) and record its created event."""

    @abc.abstractmethod
    def abort(self) -> None: ...


class ObjectStore(abc.ABC):
    """Blocking calls: the API runs them in a worker thread (`Upload.write` excepted)."""

    outbox: Outbox  # the bucket events the broker is yet to publish

    @abc.abstractmethod
    def create_bucket(self, bucket: str) -> bool:
        """True if it was created, False if it already existed."""

    @abc.abstractmethod
    def delete_bucket(self, bucket: str, *, force: bool = False) -> None: ...

    @abc.abstractmethod
    def list_buckets(self) -> list[BucketInfo]: ...

    @abc.abstractmethod
    def upload(self, bucket: str, key: str, content_type: str) -> Upload: ...

    @abc.abstractmethod
    def head(self, bucket: str, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    def read(self, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        """The object's info and its bytes in chunks, read as they are consumed."""

    @abc.abstractmethod
    def delete(self, bucket: str, key: str) -> None: ...

    @abc.abstractmethod
    def list(self, bucket: str, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        """Objects in key order after `start_after`, at most `limit` of them."""

    def close(self) -> None:  # noqa: B027 - optional: a store with nothing to release keeps it
        """Release connections and files."""
