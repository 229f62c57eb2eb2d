"""The S3 backend: AWS S3, MinIO or Ceph RGW through boto3, chosen by configuration only.

Lepton bucket NAME is S3 bucket `bucket_prefix + NAME`, so several platforms can share an
account. Uploads are spooled to a local temporary file while they stream in (a 1 GB object never
sits in memory) and sent with boto3's transfer manager: multipart above `multipart_threshold`.
Object events go to the outbox for writes made through the platform, unless the operator wired
the buckets' own S3 event notifications to the platform (`notifications: true`), which then
also covers writes that bypass it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from lepton_platform.buckets.base import (
    CHUNK,
    BucketInfo,
    BucketNotEmpty,
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    ObjectStore,
    StorageError,
    Upload,
)
from lepton_platform.database import Database
from lepton_platform.outbox import CREATED, DELETED, Outbox, bucket_event


class S3Error(StorageError):
    status = 502


def _info(key: str, size: int, etag: str, content_type: str, modified: Any) -> ObjectInfo:
    return ObjectInfo(key, size, etag.strip('"'), content_type, modified.timestamp())


class S3Upload(Upload):
    def __init__(self, store: S3Store, bucket: str, key: str, content_type: str) -> None:
        self.store, self.bucket, self.key, self.content_type = store, bucket, key, content_type
        self.file = tempfile.NamedTemporaryFile(dir=store.tmp, delete=False)

    def write(self, chunk: bytes) -> None:
        self.file.write(chunk)

    def commit(self) -> ObjectInfo:
        self.file.close()
        try:
            self.store.client.upload_file(
                self.file.name,
                self.store.s3_name(self.bucket),
                self.key,
                ExtraArgs={"ContentType": self.content_type},
                Config=self.store.transfer,
            )
        except Exception as exc:
            raise self.store.error(exc, self.bucket, self.key) from exc
        finally:
            Path(self.file.name).unlink(missing_ok=True)
        info = self.store.head(self.bucket, self.key)
        self.store.emit(CREATED, self.bucket, info.key, {"size": info.size, "etag": info.etag, "content_type": info.content_type})
        return info

    def abort(self) -> None:
        self.file.close()
        Path(self.file.name).unlink(missing_ok=True)


class S3Store(ObjectStore):
    def __init__(
        self,
        root: Path,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        bucket_prefix: str = "",
        multipart_threshold: int = 64 << 20,
        notifications: bool = False,
    ) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.tmp = root / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.region = region or "us-east-1"
        self.prefix = bucket_prefix
        self.notifications = notifications
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=32),
        )
        # Four parts in flight, not boto3's ten: each holds a part's worth of buffers in the
        # platform, and the peak memory of one upload grows with their number (tests/embedded/test_buckets.py).
        self.transfer = TransferConfig(
            multipart_threshold=multipart_threshold, multipart_chunksize=max(multipart_threshold, 5 << 20), max_concurrency=4
        )
        self.outbox = Outbox(Database(root / "outbox.db", ""))

    def close(self) -> None:
        self.outbox.database.close()
        self.client.close()

    def s3_name(self, bucket: str) -> str:
        return self.prefix + bucket

    def emit(self, kind: str, bucket: str, key: str, data: dict[str, Any]) -> None:
        if not self.notifications:
            self.outbox.put([bucket_event(kind, bucket, key, data)])

    def error(self, exc: Exception, bucket: str, key: str | None = None) -> Exception:
        """botocore's errors as the store's own: 404s by what is missing, the rest as 502."""
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchBucket",):
                return NoSuchBucket(bucket)
            if code in ("NoSuchKey", "404", "NotFound") and key is not None:
                return NoSuchKey(bucket, key) if self._exists(bucket) else NoSuchBucket(bucket)
            if code in ("404", "NotFound"):
                return NoSuchBucket(bucket)
        return S3Error(f"S3 request for bucket {bucket!r} failed: {exc}")

    def _exists(self, bucket: str) -> bool:
        try:
            self.client.head_bucket(Bucket=self.s3_name(bucket))
            return True
        except Exception:
            return False

    def create_bucket(self, bucket: str) -> bool:
        # us-east-1 answers 200 to creating a bucket you already own: ask first.
        if self._exists(bucket):
            return False
        args: dict[str, Any] = {"Bucket": self.s3_name(bucket)}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**args)
            return True
        except self.client.exceptions.BucketAlreadyOwnedByYou:
            return False
        except Exception as exc:
            raise self.error(exc, bucket) from exc

    def delete_bucket(self, bucket: str, *, force: bool = False) -> None:
        keys = [info.key for info in self._all(bucket)]
        if keys and not force:
            raise BucketNotEmpty(bucket)
        try:
            for start in range(0, len(keys), 1000):
                batch = keys[start : start + 1000]
                self.client.delete_objects(Bucket=self.s3_name(bucket), Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                for key in batch:
                    self.emit(DELETED, bucket, key, {})
            self.client.delete_bucket(Bucket=self.s3_name(bucket))
        except Exception as exc:
            raise self.error(exc, bucket) from exc

    def _all(self, bucket: str) -> Iterator[ObjectInfo]:
        after = ""
        while page := self.list(bucket, start_after=after):
            yield from page
            after = page[-1].key

    def list_buckets(self) -> list[BucketInfo]:
        try:
            buckets = self.client.list_buckets()["Buckets"]
        except Exception as exc:
            raise self.error(exc, "*") from exc
        return [
            BucketInfo(b["Name"][len(self.prefix) :], b["CreationDate"].timestamp()) for b in buckets if b["Name"].startswith(self.prefix)
        ]

    def upload(self, bucket: str, key: str, content_type: str) -> Upload:
        if not self._exists(bucket):
            raise NoSuchBucket(bucket)
        return S3Upload(self, bucket, key, content_type)

    def head(self, bucket: str, key: str) -> ObjectInfo:
        try:
            r = self.client.head_object(Bucket=self.s3_name(bucket), Key=key)
        except Exception as exc:
            raise self.error(exc, bucket, key) from exc
        return _info(key, r["ContentLength"], r["ETag"], r.get("ContentType", "application/octet-stream"), r["LastModified"])

    def read(self, bucket: str, key: str) -> tuple[ObjectInfo, Iterator[bytes]]:
        try:
            r = self.client.get_object(Bucket=self.s3_name(bucket), Key=key)
        except Exception as exc:
            raise self.error(exc, bucket, key) from exc
        info = _info(key, r["ContentLength"], r["ETag"], r.get("ContentType", "application/octet-stream"), r["LastModified"])
        return info, _chunks(r["Body"])

    def delete(self, bucket: str, key: str) -> None:
        self.head(bucket, key)
        try:
            self.client.delete_object(Bucket=self.s3_name(bucket), Key=key)
        except Exception as exc:
            raise self.error(exc, bucket, key) from exc
        self.emit(DELETED, bucket, key, {})

    def list(self, bucket: str, prefix: str = "", start_after: str = "", limit: int = 1000) -> list[ObjectInfo]:
        try:
            r = self.client.list_objects_v2(Bucket=self.s3_name(bucket), Prefix=prefix, StartAfter=start_after, MaxKeys=limit)
        except Exception as exc:
            raise self.error(exc, bucket) from exc
        # ListObjectsV2 does not return content types; HEAD the object when you need it.
        return [_info(o["Key"], o["Size"], o["ETag"], "", o["LastModified"]) for o in r.get("Contents", [])]


def _chunks(body: Any) -> Iterator[bytes]:
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def s3_event_records(message: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """CloudEvents for the records of an S3 event notification (AWS, MinIO and moto's format)."""
    events = []
    for record in message.get("Records", []):
        name = record.get("eventName", "")
        s3 = record.get("s3", {})
        s3_bucket = s3.get("bucket", {}).get("name", "")
        obj = s3.get("object", {})
        if not s3_bucket.startswith(prefix) or "key" not in obj:
            continue
        bucket, key = s3_bucket[len(prefix) :], unquote_plus(obj["key"])
        kind = CREATED if name.startswith("ObjectCreated") else DELETED if name.startswith("ObjectRemoved") else None
        if kind is None:
            continue
        data = {"size": obj.get("size", 0), "etag": str(obj.get("eTag", "")).strip('"')} if kind == CREATED else {}
        event_id = f"{s3_bucket}/{obj['key']}/{obj.get('sequencer') or record.get('eventTime', '')}/{name}"
        when = _parse_time(record.get("eventTime"))
        events.append(bucket_event(kind, bucket, key, data, event_id=event_id, when=when))
    return events


def _parse_time(value: str | None) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return time.time()
