"""The platform's port at the HTTP level: invocations are proxied straight from the socket
(platform/lepton_platform/connection.py), everything else by uvicorn, on the same connection."""

from __future__ import annotations

import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS, wait_for


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    folder = tmp_path_factory.mktemp("invocation-path")
    running = PlatformProcess(start_platform(folder / "home", folder / "platform.log"), folder / "home", folder / "src")
    running.deploy(FUNCTIONS / "platform" / "app.py", "greet")
    running.deploy(FUNCTIONS / "platform" / "faults.py", "slow")
    running.deploy(FUNCTIONS / "kinds" / "main.py", "words")
    yield running
    running.process.stop(signal.SIGTERM)


class Wire:
    """One raw keep-alive connection, to see exactly what goes over it."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=30)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self, *, head: bool = False) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            assert self._fill(), f"connection closed; got {self.buffer!r}"
        top, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = top.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        status = int(status_line.split()[1])
        if status < 200 or head:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    assert self._fill()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line, 16)
                while len(self.buffer) < size + 2:
                    assert self._fill()
                body, self.buffer = body + self.buffer[:size], self.buffer[size + 2 :]
                if size == 0:
                    return status, headers, body
        length = int(headers.get("content-length", 0))
        while len(self.buffer) < length:
            assert self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self) -> bool:
        return not self.buffer and not self._fill()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def wire(target: PlatformProcess) -> Iterator[Wire]:
    connection = Wire(target.url)
    yield connection
    connection.close()


def post(path: str, body: bytes, token: str | None, *extra: str, version: str = "HTTP/1.1") -> bytes:
    auth = [f"Authorization: Bearer {token}"] if token else []
    lines = [f"POST {path} {version}", "Host: test", "Content-Type: application/json", f"Content-Length: {len(body)}", *auth, *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def invocations(target: PlatformProcess, function: str) -> float:
    with target.http() as http:
        text = http.get("/metrics").text
    found = re.search(rf'lepton_invocations_total{{code="200",function="{function}"}} (\S+)', text)
    return float(found.group(1)) if found else 0.0


def test_one_connection_carries_invocations_and_api_calls(target, wire):
    wire.send(post("/fn/greet", b'{"name": "a"}', target.token))
    status, headers, body = wire.response()
    assert (status, json.loads(body)["hello"]) == (200, "a")
    assert headers["x-lepton-revision"].startswith("greet-") and headers["x-lepton-cold-start"] in ("0", "1")
    assert "authorization" not in body.decode()

    wire.send(f"GET /v1/functions HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {target.token}\r\n\r\n".encode())
    status, _, body = wire.response()
    assert status == 200 and "greet" in {f["name"] for f in json.loads(body)}

    wire.send(post("/fn/greet", b'{"name": "b"}', target.token))
    status, _, body = wire.response()
    assert (status, json.loads(body)["hello"]) == (200, "b")


def latency(target: PlatformProcess, function: str) -> dict[str, float]:
    """The invocation latency histogram's samples for `function`, by name (`le` for buckets)."""
    with target.http() as http:
        text = http.get("/metrics").text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "lepton_invocation_duration_seconds"]
    return {s.labels.get("le", s.name): s.value for s in family.samples if s.labels["function"] == function}


def test_invocations_are_counted_and_timed_for_prometheus(target, wire):
    before_count, before = invocations(target, "greet"), latency(target, "greet")
    started = time.perf_counter()
    for name in "abc":
        wire.send(post("/fn/greet", name.encode().join([b'{"name": "', b'"}']), target.token))
        assert wire.response()[0] == 200
    took = time.perf_counter() - started
    after = latency(target, "greet")

    assert invocations(target, "greet") == before_count + 3
    assert after["lepton_invocation_duration_seconds_count"] == before.get("lepton_invocation_duration_seconds_count", 0) + 3
    # The platform stops its clock after it has written the reply, so a loaded machine may let
    # the client read it first: a millisecond per call of slack, still far under a wrong unit.
    assert 0 < after["lepton_invocation_duration_seconds_sum"] - before.get("lepton_invocation_duration_seconds_sum", 0) <= took + 0.003
    buckets = [value for key, value in after.items() if not key.startswith("lepton_")]
    assert buckets == sorted(buckets) and buckets[-1] == after["lepton_invocation_duration_seconds_count"]


def test_refusals_keep_the_connection_usable(target, wire):
    for request, expected in [
        (post("/fn/greet", b"{}", None), (401, "missing bearer token for function 'greet'")),
        (post("/fn/greet", b"{}", "wrong"), (403, "invalid token for function 'greet'")),
        (post("/fn/nope", b"{}", target.token), (404, "function 'nope' not found; `lepton ls` lists the deployed ones")),
    ]:
        wire.send(request)
        status, headers, body = wire.response()
        assert (status, json.loads(body)["detail"]) == expected
    assert headers.get("connection") != "close"
    wire.send(post("/fn/greet", b'{"name": "still here"}', target.token))
    assert wire.response()[0] == 200


def test_expect_100_continue(target, wire):
    body = json.dumps({"name": "x" * 5000}).encode()
    head = post("/fn/greet", body, target.token, "Expect: 100-continue")[: -len(body)]
    wire.send(head)
    assert wire.response()[0] == 100
    wire.send(body)
    status, _, reply = wire.response()
    assert status == 200 and json.loads(reply)["hello"] == "x" * 5000

    wire.send(post("/fn/greet", body, "wrong", "Expect: 100-continue")[: -len(body)])
    status, headers, _ = wire.response()
    assert (status, headers["connection"]) == (403, "close")  # refused without reading the body
    assert wire.closed()


def test_a_chunked_request_body_reaches_the_function(target, wire):
    body = json.dumps({"name": "chunked"}).encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:])) + b"0\r\n\r\n"
    wire.send(
        (
            f"POST /fn/greet HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {target.token}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode()
        + chunks
    )
    status, _, reply = wire.response()
    assert (status, json.loads(reply)["hello"]) == (200, "chunked")


def test_pipelined_requests_are_answered_one_at_a_time_then_closed(target, wire):
    """RFC 9112 lets a server close after the first; the client sends the rest again."""
    before = invocations(target, "greet")
    wire.send(post("/fn/greet", b'{"name": "first"}', target.token) + post("/fn/greet", b'{"name": "second"}', target.token))
    status, headers, body = wire.response()
    assert (status, json.loads(body)["hello"], headers["connection"]) == (200, "first", "close")
    assert wire.closed()
    assert invocations(target, "greet") == before + 1  # the second was not run


def test_a_streamed_reply_arrives_as_it_is_produced(target):
    with target.http() as http, http.stream("POST", "/fn/words", json={"text": "one two three four"}) as response:
        assert response.status_code == 200 and response.headers["transfer-encoding"] == "chunked"
        pieces = [piece for piece in response.iter_raw() if piece]
    assert b"".join(pieces) == b"one two three four "
    assert len(pieces) >= 2


def test_requests_off_the_fast_path_take_the_asgi_path(target, wire):
    wire.send(f"HEAD /fn/greet HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {target.token}\r\n\r\n".encode())
    status, headers, _ = wire.response(head=True)
    assert status == 405 and headers["allow"] == "POST"  # the router's answer: the function takes POST
    wire.send(post("/fn/greet", b'{"name": "after head"}', target.token))
    status, _, body = wire.response()
    assert (status, json.loads(body)["hello"]) == (200, "after head")

    old = Wire(target.url)
    old.send(post("/fn/greet", b'{"name": "http/1.0"}', target.token, version="HTTP/1.0"))
    status, headers, body = old.response()
    old.close()
    assert (status, json.loads(body)["hello"]) == (200, "http/1.0")
    assert headers["x-lepton-revision"].startswith("greet-")


def test_a_caller_that_hangs_up_frees_the_replica(target):
    """Mid-reply, a hang-up stops the reply and frees the slot at once: this stream would run
    for a minute more. Before the reply starts, the slot comes back when the replica answers
    (README: "A caller that hangs up frees its slot when the replica finishes")."""
    with target.http() as http:
        assert http.post("/fn/words", json={"text": "warm"}).status_code == 200
    caller = Wire(target.url)
    caller.send(post("/fn/words", json.dumps({"text": "word " * 6000}).encode(), target.token))  # 0.01 s a word
    assert caller.response(head=True)[0] == 200  # the reply has started streaming
    assert target.info("words")["in_flight"] == 1
    caller.close()
    wait_for(lambda: target.info("words")["in_flight"] == 0, timeout=10, message="the slot is freed long before the stream would end")

    caller = Wire(target.url)
    caller.send(post("/fn/slow", b'{"seconds": 1}', target.token))
    wait_for(lambda: target.info("slow")["in_flight"] == 1, timeout=10, message="the call runs")
    caller.close()
    wait_for(lambda: target.info("slow")["in_flight"] == 0, timeout=10, message="the slot is freed once the replica answers")
    with target.http() as http:
        assert http.post("/fn/slow", json={"seconds": 0}).json() == {"slept": 0}
        assert http.post("/fn/words", json={"text": "still serving"}).text == "still serving "


def test_stopping_the_platform_finishes_the_invocation_in_flight(platform):
    platform.deploy(platform.source("faults.py"), "slow")
    with platform.http() as http:
        assert http.post("/fn/slow", json={"seconds": 0}).status_code == 200
    answers: list[tuple[int, dict]] = []

    def call() -> None:
        with platform.http() as http:
            response = http.post("/fn/slow", json={"seconds": 1.5})
            answers.append((response.status_code, response.json()))

    caller = threading.Thread(target=call)
    caller.start()
    wait_for(lambda: platform.info("slow")["in_flight"] == 1, timeout=10, message="the call is in flight")
    platform.process.proc.send_signal(signal.SIGTERM)
    caller.join(30)
    assert answers == [(200, {"slept": 1.5})]


def test_large_bodies_pass_both_ways(target):
    name = "x" * (5 << 20)
    with target.http() as http:
        response = http.post("/fn/greet", json={"name": name})
    assert response.status_code == 200 and response.json()["hello"] == name


def replica_starts(target: PlatformProcess, function: str) -> float:
    with target.http() as http:
        text = http.get("/metrics").text
    return sum(float(n) for n in re.findall(rf'lepton_replica_start_seconds_count{{[^}}]*function="{function}"[^}}]*}} (\S+)', text))


def test_a_caller_that_hangs_up_during_a_cold_start_frees_the_replica(target):
    """The request leaves the queue when its caller goes: the replica it woke starts, and the
    request never runs on it."""
    wait_for(lambda: target.info("greet")["replicas"] == 0, timeout=15, message="greet scales to zero after 1 s")
    before, starts = invocations(target, "greet"), replica_starts(target, "greet")
    caller = Wire(target.url)
    caller.send(post("/fn/greet", b'{"name": "gone"}', target.token))
    caller.close()
    wait_for(lambda: replica_starts(target, "greet") > starts, timeout=10, message="the replica it woke became ready")
    wait_for(lambda: target.info("greet")["in_flight"] == 0, timeout=10, message="nothing holds the replica")
    assert invocations(target, "greet") == before, "the abandoned request was run"
    with target.http() as http:
        assert http.post("/fn/greet", json={"name": "next"}).json()["hello"] == "next"
    assert invocations(target, "greet") == before + 1
