"""Trace context end to end on a real `lepton up`: a caller's `traceparent` goes through the
router to `publish`, into the event it sends, through the broker to `consume`; jobs and reply
events keep it; the caller gets the trace id back in `Lepton-Trace-Id`; log lines carry it.
The platform and its replicas export their spans to an OTLP/HTTP receiver on loopback.

The functions (tests/functions/tracing/chain.py) write `TRACED {json}` lines to their logs."""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lepton.runtime import tracing
from tests.embedded.conftest import PlatformProcess, deployed_platform
from tests.helpers import FUNCTIONS, wait_for
from tests.otlp import Receiver

pytestmark = pytest.mark.slow

CHAIN = FUNCTIONS / "tracing" / "chain.py"
STRUCTURED = {"content-type": "application/cloudevents+json"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[PlatformProcess]:
    """The chain deployed on a platform that exports spans (batched every 100 ms, not 5 s)."""
    yield from deployed_platform(
        tmp_path_factory, "tracing", CHAIN, env={"LEPTON_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
    )


def log_lines(home: Path) -> list[str]:
    return [line for log in sorted((home / "logs").rglob("*.log")) for line in log.read_text(errors="replace").splitlines()]


def records(platform: PlatformProcess, fn: str) -> list[dict]:
    """The `TRACED` lines of `fn`, whatever stamp a line starts with."""
    found = [json.loads(line.partition("TRACED ")[2]) for line in log_lines(platform.home) if "TRACED {" in line]
    return [r for r in found if r["fn"] == fn]


def new_traceparent() -> tuple[str, str]:
    trace, parent = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    return f"00-{trace}-{parent}-01", trace


def publish(platform: PlatformProcess, mark: str, headers: dict[str, str]) -> tuple[dict, str]:
    with platform.http() as http:
        response = http.post("/fn/publish", json={"mark": mark}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["lepton-trace-id"]


def consumed(platform: PlatformProcess, mark: str) -> dict:
    return wait_for(lambda: [r for r in records(platform, "consume") if r["attrs"]["id"] == mark], message=f"event {mark} consumed")[0]


def test_the_callers_trace_reaches_the_function_its_event_triggers(traced):
    traceparent, trace = new_traceparent()
    mark = uuid.uuid4().hex
    got, echoed = publish(traced, mark, {"traceparent": traceparent, "tracestate": "vendor=1"})
    assert echoed == trace and got["trace_id"] == trace
    sent = tracing.parse(got["traceparent"])
    assert sent.trace_id == trace and sent.parent_id != traceparent[36:52]
    event = consumed(traced, mark)
    assert event["attrs"]["traceparent"] == got["traceparent"]  # the extension: publish's own span
    assert event["attrs"]["tracestate"] == "vendor=1"
    assert event["trace_id"] == trace
    assert tracing.parse(event["traceparent"]).parent_id not in (sent.parent_id, traceparent[36:52])  # a span of its own


def test_without_a_traceparent_a_new_trace_is_made_and_returned(traced):
    mark = uuid.uuid4().hex
    got, echoed = publish(traced, mark, {})
    assert HEX32.match(echoed) and got["trace_id"] == echoed
    assert consumed(traced, mark)["trace_id"] == echoed


@pytest.mark.parametrize("invalid", [f"00-{'0' * 32}-{'1' * 16}-01", f"00-{'A' * 32}-{'1' * 16}-01", "garbage"])
def test_an_invalid_traceparent_is_replaced_not_passed_on(traced, invalid):
    mark = uuid.uuid4().hex
    got, echoed = publish(traced, mark, {"traceparent": invalid, "tracestate": "vendor=1"})
    assert HEX32.match(echoed) and got["trace_id"] == echoed and echoed not in invalid.lower()
    event = consumed(traced, mark)
    assert event["trace_id"] == echoed and "tracestate" not in event["attrs"]


def test_the_asgi_request_path_carries_the_trace_too(traced):
    """HTTP/1.0 takes the ASGI path (router.py, proxy.py) instead of the socket fast path."""
    traceparent, trace = new_traceparent()
    body = json.dumps({"mark": uuid.uuid4().hex, "send": False}).encode()
    host, port = traced.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            b"POST /fn/publish HTTP/1.0\r\nauthorization: Bearer %s\r\ntraceparent: %s\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (traced.token.encode(), traceparent.encode(), len(body), body)
        )
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and f"lepton-trace-id: {trace}".encode() in head.lower()
    assert json.loads(payload)["trace_id"] == trace


def test_log_lines_of_the_handler_carry_the_trace_id(traced):
    traceparent, trace = new_traceparent()
    mark = uuid.uuid4().hex
    publish(traced, mark, {"traceparent": traceparent})
    (line,) = wait_for(lambda: [line for line in log_lines(traced.home) if f"publishing {mark}" in line], message="the log line")
    assert f"trace={trace} " in line


def test_an_async_job_keeps_the_trace_for_its_attempt_and_its_event(traced):
    traceparent, trace = new_traceparent()
    mark = uuid.uuid4().hex
    with traced.http() as http:
        response = http.post(
            "/fn/publish", json={"mark": mark, "send": False}, headers={"traceparent": traceparent, "prefer": "respond-async"}
        )
    assert response.status_code == 202 and response.headers["lepton-trace-id"] == trace
    job = response.json()["id"]
    ran = wait_for(lambda: [r for r in records(traced, "publish") if r["mark"] == mark], message="the job ran")[0]
    assert ran["trace_id"] == trace
    done = wait_for(lambda: [r for r in records(traced, "job-done") if r["attrs"]["subject"] == job], message="its event delivered")[0]
    assert tracing.parse(done["attrs"]["traceparent"]).trace_id == trace and done["trace_id"] == trace


def test_an_event_posted_with_a_traceparent_header_carries_it_through_a_reply(traced):
    traceparent, trace = new_traceparent()
    ask = uuid.uuid4().hex
    event = {"specversion": "1.0", "id": ask, "source": "/tests", "type": "dev.test.ask", "data": {}}
    with traced.http() as http:
        assert http.post("/v1/events", json=event, headers={**STRUCTURED, "traceparent": traceparent}).status_code == 202
    asked = wait_for(lambda: [r for r in records(traced, "reply") if r["attrs"]["id"] == ask], message="the ask delivered")[0]
    assert asked["attrs"]["traceparent"] == traceparent and asked["trace_id"] == trace
    answer = wait_for(lambda: [r for r in records(traced, "answered") if r["attrs"]["id"] == f"answer-{ask}"], message="the answer")[0]
    assert tracing.parse(answer["attrs"]["traceparent"]).trace_id == trace and answer["trace_id"] == trace


def test_platform_and_replicas_export_spans_in_the_callers_trace(traced, receiver):
    traceparent, trace = new_traceparent()
    mark = uuid.uuid4().hex
    got, _ = publish(traced, mark, {"traceparent": traceparent})
    consumed(traced, mark)
    names = {"invoke publish", "run publish", "invoke consume", "run consume"}

    def spans() -> dict[str, dict]:
        found = {span["name"]: span for span in receiver.find(trace_id=trace)}
        return found if names <= set(found) and any(n.startswith("deliver ") for n in found) else {}

    found = wait_for(spans, message="spans of the platform and both replicas")
    invoked, ran = found["invoke publish"], found["run publish"]
    assert (invoked["kind"], invoked["parent_id"], invoked["service"]) == ("server", traceparent[36:52], "lepton")
    assert invoked["attributes"]["lepton.function"] == "publish" and invoked["attributes"]["http.response.status_code"] == 200
    assert invoked["attributes"]["lepton.revision"].startswith("publish-") and "lepton.cold_start" in invoked["attributes"]
    assert (ran["parent_id"], ran["service"]) == (invoked["span_id"], "publish")
    assert tracing.parse(got["traceparent"]).parent_id == ran["span_id"]
    (delivered,) = [span for name, span in found.items() if name.startswith("deliver ")]
    assert delivered["kind"] == "consumer" and delivered["parent_id"] == ran["span_id"]  # the event was sent from `run publish`
    assert found["invoke consume"]["parent_id"] == delivered["span_id"]
    assert found["run consume"]["parent_id"] == found["invoke consume"]["span_id"]
