"""Buckets through the platform API: one behaviour suite, run against the embedded local store
and against S3 (a moto server on loopback), plus scoped access from inside a deployed function.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

import lepton
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import wait_for

S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def storage_platform(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[PlatformProcess]:
    env = {}
    if backend == "s3":
        # Each test gets its own bucket prefix, so tests sharing the moto server stay independent.
        env = {
            **S3_ENV,
            "LEPTON_STORAGE": "s3",
            "LEPTON_S3_ENDPOINT_URL": request.getfixturevalue("moto_server"),
            "LEPTON_S3_BUCKET_PREFIX": f"t{uuid.uuid4().hex[:10]}-",
            "LEPTON_S3_MULTIPART_THRESHOLD": str(5 << 20),
        }
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env=env, fork=False), home, tmp_path / "src")
    running.backend = backend
    running.env = env
    yield running
    running.process.stop(signal.SIGTERM)


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformProcess]:
    yield from storage_platform(request.param, tmp_path, request)


@pytest.fixture
def s3_platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PlatformProcess]:
    yield from storage_platform("s3", tmp_path, request)


def bucket_events(platform: PlatformProcess, at_least: int = 0, timeout: float = 5) -> list[dict]:
    """Bucket events the broker has taken in, read from its own SQLite file (the storage
    outbox is drained into it within ~50 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        with sqlite3.connect(platform.home / "events.db") as db:
            events = [json.loads(row[0]) for row in db.execute("SELECT body FROM events WHERE source LIKE '/buckets/%' ORDER BY seq")]
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_objects_round_trip(storage):
    with storage.client() as api:
        assert api.request("PUT", "/v1/buckets/photos").status_code == 201
        assert api.request("PUT", "/v1/buckets/photos").json()["created"] is False
        photos = lepton.bucket("photos", api)
        put = photos.put("in/cat.png", b"\x89PNG fake", content_type="image/png")
        assert put["size"] == 9 and put["content_type"] == "image/png"
        assert photos.get("in/cat.png") == b"\x89PNG fake"
        assert photos.head("in/cat.png") == {"key": "in/cat.png", "size": 9, "etag": put["etag"], "content_type": "image/png"}
        with photos.open("in/cat.png") as f:
            assert f.read(4) == b"\x89PNG" and f.read() == b" fake"
        assert photos.put("in/cat.png", b"v2")["etag"] != put["etag"]
        for i in range(7):
            photos.put(f"in/{i}.txt", str(i))
        photos.put("out/x.json", "{}")
        page = api.request("GET", "/v1/buckets/photos/objects", params={"prefix": "in/", "limit": 3}).json()
        assert [o["key"] for o in page["objects"]] == ["in/0.txt", "in/1.txt", "in/2.txt"] and page["next"] == "in/2.txt"
        assert [o["key"] for o in photos.list("in/", page_size=3)] == [*(f"in/{i}.txt" for i in range(7)), "in/cat.png"]
        assert [o["key"] for o in photos.list("out/")] == ["out/x.json"]
        photos.delete("out/x.json")
        assert not photos.exists("out/x.json")
        with pytest.raises(lepton.InvocationError) as missing:
            photos.get("out/x.json")
        assert missing.value.status_code == 404 and "'out/x.json' not found" in str(missing.value)
        with pytest.raises(lepton.InvocationError) as no_bucket:
            lepton.bucket("nope", api).get("a")
        assert no_bucket.value.status_code == 404 and "bucket 'nope' not found" in str(no_bucket.value)

    events = bucket_events(storage, 11)
    assert events[0]["type"] == "dev.lepton.bucket.object.created" and events[0]["source"] == "/buckets/photos"
    assert events[0]["subject"] == "in/cat.png" and events[0]["data"]["size"] == 9 and events[0]["data"]["etag"] == put["etag"]
    assert events[-1]["type"] == "dev.lepton.bucket.object.deleted" and events[-1]["subject"] == "out/x.json"
    assert len({e["id"] for e in events}) == len(events) == 11


def test_non_empty_bucket_is_kept_unless_forced(storage):
    with storage.http() as http:
        http.put("/v1/buckets/keep")
        http.put("/v1/buckets/keep/objects/a", content=b"1")
        refused = http.delete("/v1/buckets/keep")
        assert refused.status_code == 409 and "not empty" in refused.json()["detail"]
        assert http.get("/v1/buckets/keep/objects/a").content == b"1"
        assert http.delete("/v1/buckets/keep", params={"force": "true"}).status_code == 200
        assert [b["name"] for b in http.get("/v1/buckets").json()] == []
        assert http.delete("/v1/buckets/keep").status_code == 404


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def test_large_objects_stream_both_ways(storage):
    size = 64 << 20
    block = os.urandom(1 << 20)
    digest = hashlib.sha256(block * 64).hexdigest()
    with storage.http(timeout=120) as http:
        http.put("/v1/buckets/big")
        before = peak_rss(storage.process.proc.pid)
        up = http.put("/v1/buckets/big/objects/blob.bin", content=(block for _ in range(64)), headers={"content-length": str(size)})
        assert up.status_code == 201, up.text
        assert up.json()["size"] == size
        if storage.backend == "s3":
            assert up.json()["etag"].endswith("-13"), "multipart upload: 64 MiB in 5 MiB parts"
        down = hashlib.sha256()
        with http.stream("GET", "/v1/buckets/big/objects/blob.bin") as response:
            assert response.headers["content-length"] == str(size)
            for chunk in response.iter_bytes():
                down.update(chunk)
        assert down.hexdigest() == digest
        grown = peak_rss(storage.process.proc.pid) - before
        assert grown < size // 2, f"platform peak memory grew by {grown >> 20} MiB for a 64 MiB object"


HOSTILE_KEYS = {
    "%2E%2E/etc/passwd": "'..' segment",
    "a/%2E%2E/b": "'..' segment",
    "%2Fabs": "absolute path",
    "nul%00byte": "control character",
    "bell%07": "control character",
    "k" * 1025: "over 1024 bytes",
}
BAD_BUCKET_NAMES = ["UPPER", "ab", "under_score", "192.168.1.1", "a..b", "-dash", "x" * 64]


def test_hostile_keys_and_bad_bucket_names_are_refused(storage):
    with storage.http() as http:
        http.put("/v1/buckets/safe")
        for raw_key, problem in HOSTILE_KEYS.items():
            for method in ("PUT", "GET", "DELETE"):
                response = http.request(method, f"/v1/buckets/safe/objects/{raw_key}", content=b"x" if method == "PUT" else None)
                assert response.status_code == 400 and problem in response.json()["detail"], (raw_key, method)
        assert http.get("/v1/buckets/safe/objects").json()["objects"] == []
        for name in BAD_BUCKET_NAMES:
            response = http.put(f"/v1/buckets/{name}")
            assert response.status_code == 400 and "not a valid bucket name" in response.json()["detail"], name
        assert [b["name"] for b in http.get("/v1/buckets").json()] == ["safe"]
    with pytest.raises(lepton.LeptonError, match="'..' segment"):
        lepton.bucket("safe").put("../up", b"x")


def test_signed_urls(storage):
    with storage.client() as api:
        api.request("PUT", "/v1/buckets/share")
        api.request("PUT", "/v1/buckets/other")
        share = lepton.bucket("share", api)
        share.put("doc.txt", "secret doc")
        url = share.url("doc.txt", expires=60)
        assert httpx.get(url).content == b"secret doc"
        assert httpx.head(url).headers["content-length"] == "10"

        parts = urlsplit(url)
        query = dict(p.split("=") for p in parts.query.split("&"))
        tampered = {
            "another key": url.replace("doc.txt", "other.txt"),
            "another bucket": url.replace("/share/", "/other/"),
            "a later expiry": url.replace(f"expires={query['expires']}", f"expires={int(query['expires']) + 3600}"),
            "a changed signature": url.replace(
                query["signature"], query["signature"][:-1] + ("0" if query["signature"][-1] != "0" else "1")
            ),
            "as an upload": url,
        }
        for what, bad in tampered.items():
            response = httpx.put(bad, content=b"overwrite") if what == "as an upload" else httpx.get(bad)
            assert response.status_code == 403, what
            assert "signature does not match" in response.json()["detail"], what
        assert share.get("doc.txt") == b"secret doc"

        expired = share.url("doc.txt", expires=1)
        time.sleep(2.1)
        response = httpx.get(expired)
        assert response.status_code == 403 and "expired" in response.json()["detail"]

        upload = share.url("up.bin", method="PUT")
        assert httpx.put(upload, content=b"via signed url").status_code == 201
        assert share.get("up.bin") == b"via signed url"
        assert httpx.get(f"{storage.url}/v1/buckets/share/objects/doc.txt").status_code == 401


def test_upload_cut_off_half_way_leaves_nothing(storage):
    with storage.http() as http:
        http.put("/v1/buckets/cut")
        http.put("/v1/buckets/cut/objects/kept", content=b"old version")
    host, port = urlsplit(storage.url).hostname, urlsplit(storage.url).port
    uploading = storage.home / "buckets" / "tmp"  # where both stores spool an upload until it is complete
    for key in ("fresh", "kept"):
        with socket.create_connection((host, port)) as sock:
            sock.sendall(
                (
                    f"PUT /v1/buckets/cut/objects/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {storage.token}\r\n"
                    "Content-Length: 1000000\r\n\r\n"
                ).encode()
                + b"y" * 400_000
            )
            wait_for(lambda: any(uploading.iterdir()), timeout=10, message=f"the upload of {key} has begun")
        wait_for(lambda: not any(uploading.iterdir()), timeout=10, message=f"the cut-off upload of {key} is over")
    with storage.http() as http:
        assert http.head("/v1/buckets/cut/objects/fresh").status_code == 404
        assert http.get("/v1/buckets/cut/objects/kept").content == b"old version"
        assert [o["key"] for o in http.get("/v1/buckets/cut/objects").json()["objects"]] == ["kept"]
    assert [e["subject"] for e in bucket_events(storage, 1)] == ["kept"]
    if storage.backend == "local":
        assert list((storage.home / "buckets" / "tmp").iterdir()) == []


def test_s3_notifications_become_bucket_events(s3_platform):
    storage = s3_platform
    with storage.http() as http:
        http.put("/v1/buckets/inbox")
        endpoint = http.get("/v1/sources/s3").json()["url"]
    moto = storage.env["LEPTON_S3_ENDPOINT_URL"]
    sns = boto3.client("sns", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    topic = sns.create_topic(Name=f"lepton-{uuid.uuid4().hex[:8]}")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=endpoint)
    bucket = storage.env["LEPTON_S3_BUCKET_PREFIX"] + "inbox"
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}]},
    )
    s3.put_object(Bucket=bucket, Key="direct/sensor 1.csv", Body=b"t,v\n")
    s3.delete_object(Bucket=bucket, Key="direct/sensor 1.csv")
    created, deleted = bucket_events(storage, 2, timeout=10)
    assert created["type"] == "dev.lepton.bucket.object.created" and created["source"] == "/buckets/inbox"
    assert created["subject"] == "direct/sensor 1.csv" and created["data"]["size"] == 4
    assert deleted["type"] == "dev.lepton.bucket.object.deleted" and deleted["subject"] == "direct/sensor 1.csv"
    with httpx.Client() as http:
        assert http.post(endpoint.split("?")[0], json={"Records": []}).status_code == 403


def test_functions_reach_only_their_declared_buckets(platform):
    platform.deploy(platform.source("buckets.py"))
    with platform.http() as http:
        assert http.put("/v1/buckets/other").status_code == 201
        allowed = http.post("/fn/touch", json={"bucket": "allowed"}).json()
        assert allowed == {"status": 200, "body": "written by touch-00001"}
        denied = http.post("/fn/touch", json={"bucket": "other"}).json()
        assert denied["status"] == 403
        assert "function touch (touch-00001) may not use bucket 'other'" in denied["detail"]
        assert http.get("/v1/buckets/other/objects").json()["objects"] == []

        env = http.post("/fn/environment").json()
        scoped = env["LEPTON_TOKEN"]
        assert scoped.startswith("rev.environment-00001.") and platform.token not in json.dumps(env)
        assert not any(k.startswith("AWS_") for k in env)
    with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {scoped}"}) as as_function:
        assert as_function.put("/v1/buckets/mine").status_code == 403
        assert as_function.get("/v1/functions").status_code == 403
        assert as_function.get("/v1/buckets/allowed/objects").status_code == 403
        assert as_function.get("/v1/triggers").status_code == 403
        published = as_function.post(
            "/v1/events",
            json={"specversion": "1.0", "id": "e1", "source": "/fn", "type": "t"},
            headers={"content-type": "application/cloudevents+json"},
        )
        assert published.status_code == 202, "functions may publish events with their scoped token"
        forged = scoped.rsplit(".", 1)[0].replace("environment", "touch") + "." + scoped.rsplit(".", 1)[1]
        assert as_function.get("/v1/buckets/allowed/objects", headers={"Authorization": f"Bearer {forged}"}).status_code == 403
