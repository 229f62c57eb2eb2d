"""The function runtime over real HTTP: every handler kind, errors, timeouts, probes."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import pytest


def test_typed_json_handler(serve):
    fn = serve("kinds/main.py:add")
    assert httpx.post(fn.url, json={"a": 2, "b": 3}).json() == 5
    assert httpx.post(fn.url, json={"a": 2}).json() == 2


def test_bad_field_is_422_naming_it(serve):
    fn = serve("kinds/main.py:add")
    response = httpx.post(fn.url, json={"a": "two"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "a"]
    missing = httpx.post(fn.url, json={"b": 1})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "a"]


def test_malformed_body_is_400_and_non_object_is_422(serve):
    fn = serve("kinds/main.py:add")
    bad = httpx.post(fn.url, content=b"{not json", headers={"content-type": "application/json"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["detail"]
    listed = httpx.post(fn.url, json=[1, 2])
    assert listed.status_code == 422 and "JSON object" in listed.json()["detail"]


def test_pydantic_model_handler_and_http_errors(serve):
    fn = serve("kinds/main.py:checkout")
    assert httpx.post(fn.url, json={"item": "tea", "quantity": 4}).json() == {"item": "tea", "total": 10.0}
    refused = httpx.post(fn.url, json={"item": "tea", "quantity": 0})
    assert refused.status_code == 400 and refused.json()["detail"] == "quantity must be positive"
    invalid = httpx.post(fn.url, json={"item": "tea", "quantity": "many"})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["loc"] == ["body", "quantity"]


def test_async_handler(serve):
    fn = serve("kinds/main.py:shout")
    assert httpx.post(fn.url, json={"text": "hi"}).json() == "HI"


def test_handler_exception_is_500_and_server_survives(serve):
    fn = serve("kinds/main.py:divide")
    failed = httpx.post(fn.url, json={"a": 1, "b": 0})
    assert failed.status_code == 500
    assert failed.json()["detail"].startswith("ZeroDivisionError")
    assert httpx.post(fn.url, json={"a": 1, "b": 4}).json() == 0.25
    assert "Traceback" in fn.output() and "ZeroDivisionError" in fn.output()


def test_a_handler_raising_stop_iteration_fails_its_call_only(serve):
    fn = serve("kinds/main.py:first")
    failed = httpx.post(fn.url, json={"items": []}, timeout=10)
    assert (failed.status_code, failed.json()["detail"]) == (500, "RuntimeError: handler raised StopIteration()")
    assert httpx.post(fn.url, json={"items": [7]}).json() == 7


def test_timeout_is_504_and_sync_handlers_do_not_block_the_loop(serve):
    fn = serve("kinds/main.py:sleepy")
    started = time.monotonic()
    assert httpx.post(fn.url, json={"seconds": 3}).status_code == 504
    assert time.monotonic() - started < 2.5
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        started = time.monotonic()
        results = list(pool.map(lambda _: httpx.post(fn.url, json={"seconds": 0.5}).json(), range(4)))
    assert results == [0.5] * 4
    assert time.monotonic() - started < 1.5  # ran side by side in the thread pool


def test_a_call_that_timed_out_waiting_for_a_thread_never_runs(serve, tmp_path):
    fn = serve("kinds/main.py:mark", env={"MARKS": str(tmp_path)})
    with concurrent.futures.ThreadPoolExecutor(41) as pool:
        # Each busy call holds its thread 5 s and times out after 3 s: the 40 calls have 3 s to
        # be in flight together, wide enough for a loaded 2-core machine.
        busy = [pool.submit(httpx.post, fn.url, json={"seconds": 5, "name": f"busy-{i}"}, timeout=15) for i in range(40)]
        deadline = time.monotonic() + 10
        while 'lepton_in_flight_requests{function="mark"} 40.0' not in httpx.get(fn.url + "/metrics").text:
            assert time.monotonic() < deadline, "the 40 calls never were in flight together"
            time.sleep(0.02)  # until all 40 of the replica's handler threads are asleep
        queued = httpx.post(fn.url, json={"seconds": 0, "name": "queued"}, timeout=15)
        assert queued.status_code == 504 and {f.result().status_code for f in busy} == {504}
    deadline = time.monotonic() + 10
    while len(list(tmp_path.glob("busy-*"))) < 40 and time.monotonic() < deadline:
        time.sleep(0.1)  # the threads finish their 5 s and leave their marks
    assert len(list(tmp_path.glob("busy-*"))) == 40
    assert not (tmp_path / "queued").exists()


def test_streaming_chunked_and_sse(serve):
    fn = serve("kinds/main.py:count")
    with httpx.stream("POST", fn.url, json={"n": 3}) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert [json.loads(line) for line in response.iter_lines() if line] == [0, 1, 2]
    with httpx.stream("POST", fn.url, json={"n": 2}, headers={"accept": "text/event-stream"}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.read() == b"data: 0\n\ndata: 1\n\n"


def test_async_text_stream_arrives_in_pieces(serve):
    fn = serve("kinds/main.py:words")
    with httpx.stream("POST", fn.url, json={"text": "one two three"}) as response:
        chunks = list(response.iter_raw())
    assert b"".join(chunks) == b"one two three "
    assert len(chunks) >= 2


def test_stream_failing_midway_reports_over_sse(serve):
    fn = serve("kinds/main.py:flaky_stream")
    response = httpx.post(fn.url, json={"n": 1}, headers={"accept": "text/event-stream"})
    assert response.text.startswith("data: 1\n\n")
    assert "event: error" in response.text and "stream broke" in response.text


def test_probes_metrics_and_openapi(serve):
    fn = serve("kinds/main.py:checkout")
    assert httpx.get(fn.url + "/healthz").json()["status"] == "ok"
    assert httpx.get(fn.url + "/readyz").json()["status"] == "ready"
    httpx.post(fn.url, json={"item": "tea", "quantity": 1})
    httpx.post(fn.url, json={"item": "tea"})
    metrics = httpx.get(fn.url + "/metrics").text
    assert 'lepton_requests_total{code="200",function="checkout"} 1.0' in metrics
    assert 'lepton_requests_total{code="422",function="checkout"} 1.0' in metrics
    assert 'lepton_errors_total{cause="input",function="checkout"} 1.0' in metrics
    assert "lepton_request_duration_seconds_bucket" in metrics
    assert 'lepton_in_flight_requests{function="checkout"} 0.0' in metrics
    spec = httpx.get(fn.url + "/openapi.json").json()
    body = spec["paths"]["/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"] == "#/components/schemas/Order"
    assert set(spec["components"]["schemas"]["Order"]["properties"]) == {"item", "quantity"}
    out = spec["paths"]["/"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert spec["components"]["schemas"][out["$ref"].rsplit("/", 1)[1]]["properties"]["total"]["type"] == "number"


def test_class_setup_gates_readiness(serve):
    fn = serve("setup/main.py", env={"SETUP_SECONDS": "1.5"})
    assert httpx.get(fn.url + "/readyz").status_code == 503
    started = time.monotonic()
    assert httpx.post(fn.url, json={"x": 2}, timeout=10).json() == 6  # held until setup is done
    assert time.monotonic() - started > 0.5
    assert httpx.get(fn.url + "/readyz").status_code == 200


def test_failing_setup_exits_with_the_traceback_in_the_log(serve):
    fn = serve("setup/main.py", env={"SETUP_FAIL": "1"}, ready_path=None)
    assert fn.proc.wait(15) == 3
    assert "weights file is corrupt" in fn.output() and "Traceback" in fn.output()


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_cloudevent_round_trip(serve, mode):
    fn = serve("kinds/main.py:echo_event")
    event = {"specversion": "1.0", "id": "e-1", "source": "/tests", "type": "com.example.ping"}
    if mode == "binary":
        headers = {f"ce-{k}": v for k, v in event.items()}
        response = httpx.post(fn.url, json={"n": 1}, headers=headers)
        assert response.headers["ce-type"] == "com.example.echoed"
        assert response.headers["ce-subject"] == "com.example.ping"
        assert response.json() == {"got": {"n": 1}, "id": "e-1"}
    else:
        body = json.dumps({**event, "datacontenttype": "application/json", "data": {"n": 1}})
        response = httpx.post(fn.url, content=body, headers={"content-type": "application/cloudevents+json"})
        assert response.headers["content-type"].startswith("application/cloudevents+json")
        reply = response.json()
        assert reply["type"] == "com.example.echoed" and reply["data"] == {"got": {"n": 1}, "id": "e-1"}


def test_cloudevent_binary_payload_stays_bytes(serve):
    fn = serve("kinds/main.py:echo_event")
    payload = bytes([0x89, 0x50, 0x4E, 0x47]) + b"ascii"
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "/t",
        "ce-type": "com.example.png",
        "content-type": "application/octet-stream",
    }
    response = httpx.post(fn.url, content=payload, headers=headers)
    assert response.status_code == 200
    assert response.content == payload[::-1]


def test_cloudevent_without_reply_is_204_and_bad_event_is_400(serve):
    fn = serve("kinds/main.py:sink_event")
    ok = httpx.post(fn.url, json={}, headers={"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"})
    assert ok.status_code == 204
    missing_type = httpx.post(fn.url, json={}, headers={"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s"})
    assert missing_type.status_code == 400 and "type" in missing_type.json()["detail"]
    plain = httpx.post(fn.url, json={"not": "an event"})
    assert plain.status_code == 400 and "not a CloudEvent" in plain.json()["detail"]
