"""`lepton deploy --target knative`: upload the artifact to the artifacts bucket on S3, render
and validate every object before applying any, apply them, wait for Ready, report URLs."""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from lepton.functions import Function
from lepton_knative.cluster import Cluster
from lepton_knative.manifests import Target, render
from lepton_knative.validation import ensure_valid


def artifact_key(digest: str) -> str:
    return f"artifacts/{digest.removeprefix('sha256:')}.tar.gz"


def artifact_url(bucket: str, digest: str) -> str:
    return f"s3://{bucket}/{artifact_key(digest)}"


def upload_artifact(data: bytes, digest: str, bucket: str, *, endpoint_url: str | None = None, region: str | None = None,
                    credentials: dict[str, str | None] | None = None) -> str:
    """Put the artifact at its content address (once, creating the bucket if need be);
    returns its s3:// URL."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", **(credentials or {}))
    key = artifact_key(digest)
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError:
        s3.create_bucket(Bucket=bucket)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/gzip", Metadata={"sha256": hashlib.sha256(data).hexdigest()})
    return artifact_url(bucket, digest)


def render_all(functions: dict[str, Function], target: Target) -> list[dict[str, Any]]:
    objects = [obj for name in sorted(functions) for obj in render(functions[name].spec, target)]
    ensure_valid(objects)
    return objects


def apply_all(cluster: Cluster, objects: list[dict[str, Any]], *, wait: bool = True, timeout: float = 300,
              progress: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    """Apply Services first (Triggers and sources point at them), then wait for each."""
    applied = sorted(objects, key=lambda o: o["kind"] != "Service")
    for obj in applied:
        cluster.apply(obj)
    results = []
    for obj in applied:
        if obj["kind"] != "Service":
            continue
        final = cluster.wait_ready(obj, timeout, progress) if wait else obj
        results.append({"function": obj["metadata"]["labels"]["lepton.dev/function"],
                        "revision": obj["spec"]["template"]["metadata"]["name"],
                        "url": final.get("status", {}).get("url"), "status": "ready" if wait else "applied"})
    if wait:
        for obj in applied:
            if obj["kind"] != "Service":
                cluster.wait_ready(obj, timeout, progress)
    return results
