"""Object stores behind one interface; which one runs is configuration only."""

from __future__ import annotations

from pathlib import Path

from lepton_platform.buckets.base import (
    BucketInfo,
    BucketNotEmpty,
    CannotStore,
    NoSuchBucket,
    NoSuchKey,
    ObjectInfo,
    ObjectStore,
    StorageError,
    Upload,
)
from lepton_platform.config import StorageConfig

__all__ = [
    "BucketInfo",
    "BucketNotEmpty",
    "CannotStore",
    "NoSuchBucket",
    "NoSuchKey",
    "ObjectInfo",
    "ObjectStore",
    "StorageError",
    "Upload",
    "open_store",
]


def open_store(config: StorageConfig, root: Path) -> ObjectStore:
    if config.backend == "s3":
        from lepton_platform.buckets.s3 import S3Store

        return S3Store(root, **config.s3.model_dump())
    from lepton_platform.buckets.local import LocalStore

    return LocalStore(root)
