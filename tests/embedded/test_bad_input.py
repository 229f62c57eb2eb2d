"""The bad-input matrix: every /v1 route and /fn/{name} with malformed JSON, wrong types,
missing fields, oversize bodies, bad CloudEvents, hostile keys, unknown functions and invalid
names. Each gets a 4xx whose message names the problem, never a 500, and nothing is written."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS

DIGEST = "sha256:" + "ab" * 32
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    folder = tmp_path_factory.mktemp("bad-input")
    running = PlatformProcess(start_platform(folder / "home", folder / "platform.log"), folder / "home", folder / "src")
    running.deploy(FUNCTIONS / "platform" / "app.py", "greet")
    with running.http() as http:
        http.put("/v1/buckets/inbox")
    yield running
    running.process.stop(signal.SIGTERM)


CASES = [
    # artifacts
    ("PUT", "/v1/artifacts/not-a-digest", {"content": b"x"}, 400, "is not a digest"),
    ("PUT", f"/v1/artifacts/{DIGEST}", {"content": b"not the bytes"}, 400, "does not match its digest"),
    # functions
    ("POST", "/v1/functions", {"content": b"{not json", "headers": JSON}, 422, "JSON decode error"),
    ("POST", "/v1/functions", {"json": {"function": "greet"}}, 422, "artifact"),
    ("POST", "/v1/functions", {"json": {"artifact": 5, "function": "greet"}}, 422, "artifact"),
    ("POST", "/v1/functions", {"json": {"artifact": "sha256:xyz", "function": "greet"}}, 422, "pattern"),
    ("POST", "/v1/functions", {"json": {"artifact": DIGEST, "function": "greet"}}, 400, "upload it first"),
    ("GET", "/v1/functions/nope", {}, 404, "function 'nope' not found"),
    ("GET", "/v1/functions/Bad_Name", {}, 404, "not found"),
    ("DELETE", "/v1/functions/nope", {}, 404, "not found"),
    ("GET", "/v1/functions/nope/revisions", {}, 404, "not found"),
    ("POST", "/v1/functions/greet/rollback", {"content": b"[", "headers": JSON}, 422, "JSON decode error"),
    ("POST", "/v1/functions/greet/rollback", {"json": {"revision": 7}}, 422, "revision"),
    ("POST", "/v1/functions/greet/rollback", {"json": {"revision": "greet-00099"}}, 404, "has no revision 'greet-00099'"),
    ("POST", "/v1/functions/greet/rollback", {"json": {}}, 404, "no ready revision before"),
    ("GET", "/v1/functions/greet/logs?tail=-1", {}, 422, "tail"),
    ("GET", "/v1/functions/greet/logs?tail=lots", {}, 422, "tail"),
    # buckets
    ("PUT", "/v1/buckets/Not_Valid", {}, 400, "not a valid bucket name"),
    ("GET", "/v1/buckets/inbox/objects?limit=0", {}, 422, "limit"),
    ("GET", "/v1/buckets/nope/objects", {}, 404, "bucket 'nope' not found"),
    ("DELETE", "/v1/buckets/inbox?force=perhaps", {}, 422, "force"),
    ("PUT", "/v1/buckets/inbox/objects/a/%2E%2E/b", {"content": b"x"}, 400, "'..' segment"),
    ("GET", "/v1/buckets/inbox/objects/missing", {}, 404, "not found in bucket 'inbox'"),
    ("POST", "/v1/buckets/inbox/urls", {"content": b"{", "headers": JSON}, 422, "JSON decode error"),
    ("POST", "/v1/buckets/inbox/urls", {"json": {"key": "a", "expires": 0}}, 422, "expires"),
    ("POST", "/v1/buckets/inbox/urls", {"json": {"key": "a", "method": "DELETE"}}, 422, "method"),
    ("POST", "/v1/buckets/inbox/urls", {"json": {"expires": 60}}, 422, "key"),
    ("POST", "/v1/buckets/inbox/urls", {"json": {"key": "../up"}}, 400, "'..' segment"),
    ("POST", "/v1/sources/s3/notifications?secret=wrong", {"json": {}}, 403, "notification secret"),
    # events, triggers, dead letters
    ("POST", "/v1/events", {"content": b"{", "headers": {"content-type": "application/cloudevents+json"}}, 400, "not JSON"),
    ("POST", "/v1/events", {"json": {"id": "1"}, "headers": {"content-type": "application/cloudevents+json"}}, 400, "missing required"),
    (
        "POST",
        "/v1/events",
        {"content": b"[]", "headers": {"content-type": "application/cloudevents-batch+json"}},
        400,
        "non-empty JSON array",
    ),
    ("POST", "/v1/triggers", {"content": b"{", "headers": JSON}, 422, "JSON decode error"),
    ("POST", "/v1/triggers", {"json": {"filters": []}}, 422, "function"),
    ("POST", "/v1/triggers", {"json": {"function": "nope"}}, 404, "not found"),
    (
        "POST",
        "/v1/triggers",
        {"json": {"function": "greet", "filters": [{"exact": {"Bad": "x"}}]}},
        400,
        "not a CloudEvents attribute name",
    ),
    ("POST", "/v1/triggers", {"json": {"function": "greet", "delivery": {"retry": -1}}}, 400, "retry"),
    ("POST", "/v1/triggers", {"json": {"function": "greet", "delivery": {"backoff": "quadratic"}}}, 400, "backoff"),
    ("POST", "/v1/triggers", {"json": {"function": "greet", "attributes": {"type": 5}}}, 422, "attributes"),
    ("DELETE", "/v1/triggers/nope", {}, 404, "not found"),
    ("POST", "/v1/deadletters/abc/redeliver", {}, 422, "letter_id"),
    ("POST", "/v1/deadletters/906061687837072770562260992/redeliver", {}, 422, "letter_id"),  # found by schemathesis: was a 500
    ("GET", "/v1/deadletters?limit=5000", {}, 422, "limit"),
    # invocations
    ("POST", "/fn/nope", {"json": {}}, 404, "function 'nope' not found"),
    ("POST", "/fn/greet", {"content": b"{not json", "headers": JSON}, 400, "JSON"),
    ("POST", "/fn/greet", {"json": {"name": 5}}, 422, "name"),
    ("POST", "/fn/greet", {"json": ["not", "an", "object"]}, 422, ""),
]


@pytest.mark.parametrize("method, path, kwargs, status, message", CASES, ids=[f"{c[0]} {c[1]} {c[3]}" for c in CASES])
def test_bad_input_gets_a_clear_4xx(target, method, path, kwargs, status, message):
    with target.http() as http:
        response = http.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert message in json.dumps(response.json()), response.text


def raw_request(url: str, head: str, body: bytes = b"") -> tuple[int, str]:
    """Send while reading: the server may answer 413 and hang up before the body is all sent."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:

        def push() -> None:
            try:
                sock.sendall(head.encode() + body)
            except OSError:
                pass

        sender = threading.Thread(target=push, daemon=True)
        sender.start()
        sock.settimeout(30)

        def more(got: bytes) -> bytes:
            chunk = sock.recv(65536)
            assert chunk, f"the server closed the connection early; got {got!r}"  # else this loops for ever on b""
            return chunk

        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += more(reply)
        head_part, _, rest = reply.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head_part.split(b"\r\n") if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += more(head_part + rest)
    text = (head_part + b"\r\n\r\n" + rest).decode(errors="replace")
    return int(text.split()[1]), text


@pytest.mark.parametrize("path", ["/fn/greet", "/v1/events"])
def test_oversize_bodies_are_refused_before_they_are_read(target, path):
    """413 from the Content-Length alone: the 40 MiB body is never sent."""
    status, reply = raw_request(
        target.url,
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {target.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {40 << 20}\r\n\r\n",
        b"{",
    )
    assert status == 413 and "over the 33554432 byte limit" in reply


def test_a_chunked_body_over_the_limit_is_cut_off(target):
    chunk = b"x" * (1 << 20)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(33)) + b"0\r\n\r\n"
    status, reply = raw_request(
        target.url,
        f"POST /fn/greet HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {target.token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        body,
    )
    assert status == 413 and "over the 33554432 byte limit" in reply


def test_nothing_was_written_by_bad_input(target):
    with target.http() as http:
        assert http.get("/v1/buckets/inbox/objects").json()["objects"] == []
        assert [b["name"] for b in http.get("/v1/buckets").json()] == ["inbox"]
        assert [f["name"] for f in http.get("/v1/functions").json()] == ["greet"]
        assert [t["origin"] for t in http.get("/v1/triggers").json()] == []
    log = Path(target.process.log).read_text()
    assert "Traceback" not in log and " 500 " not in log


@pytest.mark.parametrize("path", ["/fn/greet", "/v1/events"])
def test_a_client_that_writes_its_whole_body_first_still_reads_the_413(target, path):
    """http.client (and requests) send the whole body before reading: without a lingering
    close the platform's hang-up reaches it as a reset, and the 413 is lost."""
    parts = urlsplit(target.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request(
            "POST", path, body=b"x" * (40 << 20), headers={"Authorization": f"Bearer {target.token}", "Content-Type": "application/json"}
        )
        response = conn.getresponse()
        assert response.status == 413 and b"over the 33554432 byte limit" in response.read()
    finally:
        conn.close()
