"""Trace context: W3C `traceparent` parsing and making, how the runtime carries a trace (into
a sync handler's thread, reply events, calls through `lepton.Client`), the platform's pieces
(ingress, job events, configuration) and span export to a real OTLP/HTTP receiver."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import lepton
from lepton.runtime import events, tracing
from lepton.runtime.tracing import TraceParent
from lepton_platform.broker.log import Event
from lepton_platform.config import ConfigError, TracingConfig, load_config
from lepton_platform.ingress import carry_trace
from lepton_platform.jobs.runner import job_event
from lepton_platform.jobs.store import Job
from lepton_platform.tracing import Tracing
from tests.helpers import wait_for
from tests.otlp import Receiver

TRACE, PARENT = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


# -- parse, new, child ----------------------------------------------------------------------


def test_parse_reads_a_valid_traceparent_and_its_tracestate():
    assert tracing.parse(VALID) == TraceParent(TRACE, PARENT, "01", None)
    assert tracing.parse(VALID, "congo=t61rcWkgMzE") == TraceParent(TRACE, PARENT, "01", "congo=t61rcWkgMzE")
    assert tracing.parse(f"00-{TRACE}-{PARENT}-00").flags == "00"
    assert tracing.parse(VALID).header() == VALID


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        55,
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{PARENT}-01",  # short trace id
        f"00-{TRACE}-{PARENT}0-01",  # long parent id
        f"00-{TRACE}-{PARENT}-1",  # one-digit flags
        f"ff-{TRACE}-{PARENT}-01",  # the forbidden version
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"0g-{TRACE}-{PARENT}-01",  # not hex
        f" {VALID}",  # not trimmed for us
    ],
)
def test_parse_refuses_what_w3c_calls_invalid(value):
    assert tracing.parse(value, "vendor=1") is None


def test_a_later_version_is_read_by_its_first_four_fields_and_sent_on_as_00():
    parsed = tracing.parse(f"01-{TRACE}-{PARENT}-01-whatever-comes")
    assert parsed == TraceParent(TRACE, PARENT, "01", None)
    assert parsed.header() == VALID


def test_new_makes_a_valid_sampled_trace_each_time():
    made = {tracing.new() for _ in range(100)}
    assert len({m.trace_id for m in made}) == 100
    for context in made:
        assert tracing.parse(context.header()) == context and context.flags == "01"
    assert tracing.parse(tracing.new_traceparent()).flags == "01"


def test_child_keeps_the_trace_flags_and_state_with_a_new_parent():
    parent = TraceParent(TRACE, PARENT, "00", "vendor=1")
    child = parent.child()
    assert (child.trace_id, child.flags, child.state) == (TRACE, "00", "vendor=1")
    assert child.parent_id != PARENT and tracing.parse(child.header()) is not None


def test_outgoing_carries_the_current_trace_only_within_its_context():
    def inside() -> dict[str, str]:
        tracing.enter(TraceParent(TRACE, PARENT, "01", "vendor=1"))
        return tracing.outgoing()

    assert contextvars.copy_context().run(inside) == {"traceparent": VALID, "tracestate": "vendor=1"}
    assert tracing.outgoing() == {} and tracing.trace_id.get() is None


def test_a_reply_event_gets_the_current_trace_unless_it_has_one():
    event = lepton.CloudEvent({"type": "t", "source": "/s", "id": "1"}, {"a": 1})
    own = lepton.CloudEvent({"type": "t", "source": "/s", "id": "2", "traceparent": f"00-{'1' * 32}-{'2' * 16}-01"}, None)

    def inside() -> tuple[lepton.CloudEvent, lepton.CloudEvent]:
        tracing.enter(TraceParent(TRACE, PARENT))
        return events.traced(event), events.traced(own)

    traced, kept = contextvars.copy_context().run(inside)
    assert traced.get_extension("traceparent") == VALID and traced.get_data() == {"a": 1}
    assert kept is own
    assert events.traced(event) is event  # no trace current


# -- the runtime, over real HTTP --------------------------------------------------------------


def test_the_handler_runs_in_a_child_of_the_callers_trace_even_in_its_thread(serve):
    fn = serve("tracing/chain.py:publish")
    got = httpx.post(fn.url, json={"mark": "m", "send": False}, headers={"traceparent": VALID, "tracestate": "vendor=1"}).json()
    assert got["trace_id"] == TRACE
    context = tracing.parse(got["traceparent"])
    assert context.trace_id == TRACE and context.parent_id != PARENT


def test_without_a_valid_traceparent_the_runtime_starts_a_trace(serve):
    fn = serve("tracing/chain.py:publish")
    fresh = httpx.post(fn.url, json={"mark": "m", "send": False}).json()
    invalid = httpx.post(fn.url, json={"mark": "m", "send": False}, headers={"traceparent": f"00-{'0' * 32}-{PARENT}-01"}).json()
    for got in (fresh, invalid):
        assert tracing.parse(got["traceparent"]).trace_id == got["trace_id"] != "0" * 32
    assert fresh["trace_id"] != invalid["trace_id"]


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_an_event_continues_its_own_trace_and_its_reply_carries_it(serve, mode):
    fn = serve("tracing/chain.py:reply")
    attributes = {"specversion": "1.0", "type": "dev.test.ask", "source": "/t", "id": "1", "traceparent": VALID}
    if mode == "binary":
        response = httpx.post(
            fn.url, content=b"{}", headers={"content-type": "application/json", **{f"ce-{k}": v for k, v in attributes.items()}}
        )
        answer = response.headers["ce-traceparent"]
    else:
        response = httpx.post(fn.url, json=attributes, headers={"content-type": "application/cloudevents+json"})
        answer = response.json()["traceparent"]
    assert response.status_code == 200
    context = tracing.parse(answer)
    assert context.trace_id == TRACE and context.parent_id != PARENT


def test_calls_through_lepton_client_carry_the_trace(serve):
    fn = serve("tracing/chain.py:publish")

    def call() -> dict:
        tracing.enter(TraceParent(TRACE, PARENT))
        with lepton.Client(fn.url) as client:
            return client.request("POST", "/", json={"mark": "m", "send": False}).json()

    assert contextvars.copy_context().run(call)["trace_id"] == TRACE
    with lepton.Client(fn.url) as client:  # outside a trace: none sent, so a new one
        assert client.request("POST", "/", json={"mark": "m", "send": False}).json()["trace_id"] != TRACE


def test_a_replica_exports_its_handler_span_under_the_caller(serve, receiver):
    fn = serve("tracing/chain.py:publish", env={"LEPTON_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    got = httpx.post(fn.url, json={"mark": "m", "send": False}, headers={"traceparent": VALID}).json()
    (span,) = wait_for(lambda: receiver.find(name="run publish"), message="the handler's span")
    assert (span["trace_id"], span["parent_id"], span["kind"], span["service"]) == (TRACE, PARENT, "server", "publish")
    assert span["attributes"]["http.response.status_code"] == 200
    assert tracing.parse(got["traceparent"]).parent_id == span["span_id"]  # what it sends on is under its span
    assert receiver.paths == ["/v1/traces"]


# -- the platform's pieces --------------------------------------------------------------------


def test_the_ingress_gives_the_request_trace_to_events_without_one():
    caller = TraceParent(TRACE, PARENT, "01", "vendor=1")
    plain = Event.from_json({"specversion": "1.0", "id": "1", "source": "/s", "type": "t", "data": {"a": 1}})
    carried = carry_trace(plain, caller)
    assert carried.attrs["traceparent"] == VALID and carried.attrs["tracestate"] == "vendor=1"
    assert json.loads(carried.body)["data"] == {"a": 1}
    own = Event.from_json({"specversion": "1.0", "id": "2", "source": "/s", "type": "t", "traceparent": f"00-{'1' * 32}-{'2' * 16}-01"})
    assert carry_trace(own, caller) is own


def test_a_job_event_carries_the_trace_the_job_was_submitted_in():
    job = Job(
        1,
        "job-1",
        "fn",
        "POST",
        "/fn/fn",
        [("content-type", "application/json"), ("traceparent", VALID)],
        "succeeded",
        1,
        1,
        0,
        0.0,
        0.0,
        finished_at=time.time(),
    )
    assert job_event(job, None).attrs["traceparent"] == VALID
    job.headers = [("content-type", "application/json")]
    assert "traceparent" not in job_event(job, None).attrs


def test_invocations_pass_the_callers_trace_on_unchanged_without_export():
    spans = Tracing(TracingConfig())
    assert spans.invocation("fn", VALID, "vendor=1").head() == f"traceparent: {VALID}\r\ntracestate: vendor=1\r\n".encode()
    invalid = spans.invocation("fn", f"00-{TRACE}-{'0' * 16}-01", "vendor=1")
    assert tracing.parse(invalid.traceparent).trace_id == invalid.trace_id != TRACE and invalid.state is None
    assert invalid.reply_header() == (b"lepton-trace-id", invalid.trace_id.encode())
    later = spans.invocation("fn", f"01-{TRACE}-{PARENT}-01-more", None)
    assert later.headers() == [("traceparent", VALID)]


def test_tracing_is_configured_in_config_yaml_or_its_environment_twin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert load_config(tmp_path).tracing.otlp_endpoint is None
    (tmp_path / "config.yaml").write_text("tracing:\n  otlp_endpoint: http://collector:4318\n  service_name: edge\n")
    assert load_config(tmp_path).tracing == TracingConfig(otlp_endpoint="http://collector:4318", service_name="edge")
    monkeypatch.setenv("LEPTON_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert load_config(tmp_path).tracing.otlp_endpoint == "http://127.0.0.1:4318"
    monkeypatch.setenv("LEPTON_OTLP_ENDPOINT", "collector:4318")
    with pytest.raises(ConfigError, match="tracing.otlp_endpoint"):
        load_config(tmp_path)


def test_the_platform_exports_its_spans_in_the_callers_trace(receiver):
    spans = Tracing(TracingConfig(otlp_endpoint=receiver.url, service_name="edge"))
    invocation = spans.invocation("fn", VALID, None)
    ours = tracing.parse(invocation.traceparent)
    assert ours.trace_id == TRACE and ours.parent_id != PARENT
    delivery = spans.delivery("fn-on-event-0", "fn", invocation.traceparent, None)
    spans.end(delivery, 0)
    spans.end(invocation, 200, cold=True)
    spans.end(invocation, 500)  # ended once only
    spans.close()  # sends what is batched
    by_name = {span["name"]: span for span in receiver.spans}
    assert set(by_name) == {"invoke fn", "deliver fn-on-event-0"}
    served, delivered = by_name["invoke fn"], by_name["deliver fn-on-event-0"]
    assert (served["kind"], served["trace_id"], served["parent_id"]) == ("server", TRACE, PARENT)
    assert served["span_id"] == ours.parent_id
    assert served["attributes"] == {"lepton.function": "fn", "lepton.cold_start": True, "http.response.status_code": 200}
    assert served["service"] == "edge" and served["status"] == 0
    assert (delivered["kind"], delivered["trace_id"], delivered["parent_id"]) == ("consumer", TRACE, served["span_id"])
    assert delivered["status"] == 2  # no answer: an error
