"""The broker end to end: events in through /v1/events, out to deployed functions that record
what they receive as `RECEIVED` lines in their replicas' logs."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS, log_records, wait_for
from tests.test_cli_run import lepton_cli

EVENTS = FUNCTIONS / "platform" / "events.py"
STRUCTURED = {"content-type": "application/cloudevents+json"}


def received(platform: PlatformProcess, fn: str | None = None) -> list[dict]:
    lines = [json.loads(line) for line in log_records(platform.home, "RECEIVED")]
    return sorted((r for r in lines if fn is None or r["fn"] == fn), key=lambda r: r["at"])


def event(type_: str, event_id: str | None = None, **extra: object) -> dict:
    return {"specversion": "1.0", "id": event_id or uuid.uuid4().hex, "source": "/tests", "type": type_, **extra}


def new_platform(folder: Path, port: int | None = None) -> PlatformProcess:
    home = folder / "home"
    return PlatformProcess(start_platform(home, folder / f"platform-{time.monotonic_ns()}.log", port), home, folder / "src")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """One platform with tests/functions/platform/events.py deployed; tests use their own ids."""
    running = new_platform(tmp_path_factory.mktemp("broker"))
    running.deploy(EVENTS)
    yield running
    running.process.stop(signal.SIGTERM)


def ids(platform: PlatformProcess, fn: str) -> list[str]:
    return [r["attrs"]["id"] for r in received(platform, fn)]


def settled(platform: PlatformProcess, fn: str) -> bool:
    """The broker owes `fn` nothing: every event stored for its triggers has been delivered
    (or dead-lettered). What a negative check waits for before it looks."""
    with platform.http() as http:
        triggers = http.get("/v1/triggers", params={"limit": 1000}).json()
    return all(t["pending"] == 0 for t in triggers if t["function"] == fn)


def test_event_is_delivered_once_even_when_sent_twice(broker):
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "order-1",
        "ce-source": "/shop",
        "ce-type": "com.example.order",
        "ce-region": "eu",
        "content-type": "application/json",
    }
    with broker.http() as http:
        first = http.post("/v1/events", content=b'{"qty": 2}', headers=headers)
        assert first.status_code == 202 and first.json()["accepted"] == 1
        again = http.post("/v1/events", content=b'{"qty": 2}', headers=headers)
        assert again.status_code == 202 and again.json() == {"accepted": 0, "duplicates": 1, "ids": ["order-1"]}
    got = wait_for(lambda: [r for r in received(broker, "orders") if r["attrs"]["id"] == "order-1"])
    assert got[0]["data"] == {"qty": 2} and got[0]["attrs"]["region"] == "eu"
    wait_for(lambda: settled(broker, "orders"), message="orders owes nothing")
    assert ids(broker, "orders").count("order-1") == 1


def test_a_batch_is_stored_and_every_event_delivered(broker):
    batch = [event("com.example.order", f"batch-{i}", data={"i": i}) for i in range(50)]
    with broker.http() as http:
        response = http.post("/v1/events", content=json.dumps(batch), headers={"content-type": "application/cloudevents-batch+json"})
    assert response.status_code == 202 and response.json()["accepted"] == 50
    wait_for(lambda: {f"batch-{i}" for i in range(50)} <= set(ids(broker, "orders")), message="all 50 delivered")
    by_id = {r["attrs"]["id"]: r for r in received(broker, "orders")}
    assert by_id["batch-7"]["data"] == {"i": 7}


@pytest.mark.parametrize(
    "headers, body, problem",
    [
        ({"ce-specversion": "1.0", "ce-source": "/s", "ce-type": "t"}, b"", "missing required attribute id"),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-type": "t"}, b"", "missing required attribute source"),
        ({"ce-specversion": "2.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}, b"", "specversion"),
        ({"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t", "ce-Bad_Name": "x"}, b"", "attribute name 'bad_name'"),
        (STRUCTURED, json.dumps({"specversion": "1.0", "id": "1", "source": "/s"}).encode(), "missing required attribute type"),
        (STRUCTURED, b"{not json", "not JSON"),
        ({"content-type": "application/cloudevents-batch+json"}, b'{"id": 1}', "non-empty JSON array"),
        (
            {"content-type": "application/cloudevents-batch+json"},
            json.dumps([event("t"), {"id": "x"}]).encode(),
            "event 1 of the batch: missing",
        ),
        ({"content-type": "text/plain"}, b"hello", "not a CloudEvent"),
    ],
)
def test_invalid_events_get_400_naming_the_problem(broker, headers, body, problem):
    with broker.http() as http:
        response = http.post("/v1/events", content=body, headers=headers)
    assert response.status_code == 400 and problem in response.json()["detail"]


def test_oversize_events_get_413_and_ingress_needs_a_token(broker):
    with broker.http() as http:
        big = http.post("/v1/events", content=b"x" * ((32 << 20) + 1), headers=STRUCTURED)
        assert big.status_code == 413 and "over the 33554432 byte limit" in big.json()["detail"]
    assert httpx.post(f"{broker.url}/v1/events", json=event("com.example.order"), headers=STRUCTURED).status_code == 401


def test_retries_with_backoff_then_dead_letters_then_redelivery(broker):
    with broker.http() as http:
        assert http.post("/v1/events", json=event("com.example.flaky.charge", "charge-1"), headers=STRUCTURED).status_code == 202
        attempts = wait_for(lambda: len(t := [r["at"] for r in received(broker, "flaky") if r["attrs"]["id"] == "charge-1"]) == 3 and t)
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]
        # Delivery(retry=2, backoff="linear", delay=0.3): waits 0.3 s, then 0.6 s (at least; a loaded
        # machine adds to each; the arithmetic itself is tests/test_spec.py's backoff_seconds).
        assert 0.25 <= gaps[0] <= 1.3 and 0.55 <= gaps[1] <= 1.6, gaps

        letter = wait_for(lambda: [r for r in received(broker, "dead-letters") if r["attrs"]["id"] == "charge-1"])[0]
        assert letter["attrs"]["knativeerrorcode"] == "500"
        assert letter["attrs"]["leptonerrormessage"] == "RuntimeError: always fails"
        assert letter["attrs"]["knativeerrordest"].startswith("flaky-")

        dead = [d for d in http.get("/v1/deadletters").json() if d["event"]["id"] == "charge-1"]
        assert len(dead) == 1 and dead[0]["attempts"] == 3 and dead[0]["code"] == 500 and dead[0]["function"] == "flaky"
        assert http.post(f"/v1/deadletters/{dead[0]['id']}/redeliver").json()["queued"] is True
        wait_for(lambda: ids(broker, "flaky").count("charge-1") >= 4, message="redelivered")
        assert http.post("/v1/deadletters/999999/redeliver").status_code == 404


def test_a_slow_trigger_never_holds_up_another(broker):
    with broker.http() as http:
        http.post(
            "/v1/events",
            content=json.dumps([event("com.example.slow", f"slow-{i}") for i in range(4)]),
            headers={"content-type": "application/cloudevents-batch+json"},
        )
        http.post("/v1/events", json=event("com.example.order", "fast-after-slow"), headers=STRUCTURED)
    wait_for(lambda: "fast-after-slow" in ids(broker, "orders"), timeout=30, message="the order arrives")
    wait_for(lambda: len(ids(broker, "sluggish")) == 4, timeout=30, message="the slow deliveries all end")
    arrived = next(r["at"] for r in received(broker, "orders") if r["attrs"]["id"] == "fast-after-slow")
    slow = [r for r in received(broker, "sluggish") if r["attrs"]["id"].startswith("slow-")]
    assert arrived < slow[1]["at"], "the order waited behind the slow trigger's backlog"
    # `sluggish` takes one at a time (max_scale=1, concurrency=1) and each takes 1.5 s: one at a
    # time, in the order they were sent, each starting once the one before has ended.
    assert [r["attrs"]["id"] for r in slow] == [f"slow-{i}" for i in range(4)]
    gaps = [b["at"] - a["at"] for a, b in zip(slow, slow[1:])]
    assert all(gap >= 1.45 for gap in gaps), f"deliveries overlapped: {gaps}"


def test_a_reply_event_goes_back_into_the_broker(broker):
    with broker.http() as http:
        http.post("/v1/events", json=event("com.example.ping", "ping-7"), headers=STRUCTURED)
    pong = wait_for(lambda: [r for r in received(broker, "pongs") if r["attrs"]["id"] == "pong-ping-7"])[0]
    assert pong["attrs"]["source"] == "/replier"


def test_bucket_uploads_trigger_functions_by_prefix(broker):
    with broker.http() as http:
        http.put("/v1/buckets/images/objects/in/cat.png", content=b"png bytes", headers={"content-type": "image/png"})
        http.put("/v1/buckets/images/objects/out/ignored.png", content=b"no")
        http.put("/v1/buckets/images/objects/in/marker.png", content=b"after the ignored one")
    got = wait_for(lambda: [r for r in received(broker, "uploads") if r["attrs"]["subject"] == "in/cat.png"])[0]
    assert got["attrs"]["type"] == "dev.lepton.bucket.object.created" and got["attrs"]["source"] == "/buckets/images"
    assert got["data"]["size"] == 9 and got["data"]["content_type"] == "image/png"
    # The outbox is drained in order: once the marker is delivered and nothing is owed, the
    # ignored upload's event has been through the broker too.
    wait_for(lambda: any(r["attrs"]["subject"] == "in/marker.png" for r in received(broker, "uploads")), message="the marker")
    wait_for(lambda: settled(broker, "uploads"), message="uploads owes nothing")
    assert not [r for r in received(broker, "uploads") if r["attrs"]["subject"] == "out/ignored.png"]


def test_triggers_added_through_the_api(broker):
    with broker.http() as http:
        made = http.post(
            "/v1/triggers",
            json={
                "function": "orders",
                "attributes": {"type": "com.example.api"},
                "filters": [{"suffix": {"subject": ".csv"}}],
                "delivery": {"retry": 1},
            },
        )
        assert made.status_code == 201, made.text
        trigger = made.json()
        assert trigger["origin"] == "api" and trigger["delivery"]["retry"] == 1
        http.post("/v1/events", json=event("com.example.api", "api-1", subject="a.csv"), headers=STRUCTURED)
        http.post("/v1/events", json=event("com.example.api", "api-2", subject="a.txt"), headers=STRUCTURED)
        wait_for(lambda: "api-1" in ids(broker, "orders"))
        listed = {t["id"]: t for t in http.get("/v1/triggers").json()}
        assert trigger["id"] in listed and any(t["kind"] == "dead-letter" for t in listed.values())
        spec_trigger = next(t for t in listed.values() if t["function"] == "orders" and t["origin"] == "spec")
        assert http.delete(f"/v1/triggers/{spec_trigger['id']}").status_code == 409
        assert http.delete(f"/v1/triggers/{trigger['id']}").status_code == 200
        http.post("/v1/events", json=event("com.example.api", "api-3", subject="b.csv"), headers=STRUCTURED)
        bad = http.post("/v1/triggers", json={"function": "orders", "filters": [{"regex": {"type": "x"}}]})
        assert bad.status_code == 400 and "unknown filter dialect 'regex'" in bad.json()["detail"]
        assert http.post("/v1/triggers", json={"function": "nope"}).status_code == 404
        # Every event is stored with the deliveries it owes before its 202: nothing owed now
        # means api-2 and api-3 were never owed, or were delivered already.
        http.post("/v1/events", json=event("com.example.order", "api-marker"), headers=STRUCTURED)
    wait_for(lambda: "api-marker" in ids(broker, "orders"), message="the marker")
    wait_for(lambda: settled(broker, "orders"), message="orders owes nothing")
    assert "api-2" not in ids(broker, "orders") and "api-3" not in ids(broker, "orders")


def test_events_and_triggers_from_the_cli(broker, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(broker.home))
    monkeypatch.setenv("LEPTON_URL", broker.url)
    sent = lepton_cli(
        "events", "send", "--type", "com.example.order", "--source", "/cli", "--id", "cli-1", "--data", '{"qty": 5}', "--attr", "region=us"
    )
    assert sent.stdout.strip() == "accepted cli-1", sent.stderr
    assert lepton_cli("events", "send", "--type", "com.example.order", "--source", "/cli", "--id", "cli-1").stdout.startswith("duplicate")
    got = wait_for(lambda: [r for r in received(broker, "orders") if r["attrs"]["id"] == "cli-1"])[0]
    assert got["data"] == {"qty": 5} and got["attrs"]["region"] == "us"
    bad = lepton_cli("events", "send", "--type", "t", "--source", "/cli", "--attr", "Bad_Name=1")
    assert bad.returncode == 1 and "attribute name 'Bad_Name' is invalid" in bad.stderr

    table = lepton_cli("triggers", "ls").stdout
    assert "orders" in table and "com.example.order" in table and "dead letters to dead-letters" in table
    with broker.http() as http:
        http.post("/v1/events", json=event("com.example.flaky.cli", "cli-dead"), headers=STRUCTURED)
    wait_for(lambda: any(d["event"]["id"] == "cli-dead" for d in json.loads(lepton_cli("events", "dlq", "--output", "json").stdout)))
    letter = next(d for d in json.loads(lepton_cli("events", "dlq", "--output", "json").stdout) if d["event"]["id"] == "cli-dead")
    assert "cli-dead" in lepton_cli("events", "dlq").stdout
    assert lepton_cli("events", "redeliver", str(letter["id"])).stdout.strip().startswith(f"dead letter {letter['id']} queued")


def test_cron_ticks_are_never_sent_twice_across_restarts(tmp_path):
    platform = new_platform(tmp_path)
    platform.deploy(FUNCTIONS / "platform" / "cron.py")
    wait_for(lambda: len(received(platform, "ticker")) >= 3, message="three ticks")
    port = int(platform.url.rsplit(":", 1)[1])
    platform.process.stop(signal.SIGTERM)
    stopped = time.time()
    time.sleep(2.5)
    platform = new_platform(tmp_path, port)
    restarted = time.time()
    try:
        wait_for(lambda: any(r["at"] > restarted + 1 for r in received(platform, "ticker")), message="ticks after restart")
    finally:
        platform.process.stop(signal.SIGTERM)
    ticks = received(platform, "ticker")
    tick_ids = [r["attrs"]["id"] for r in ticks]
    assert len(tick_ids) == len(set(tick_ids)), "a tick was delivered twice"
    assert all(r["attrs"]["type"] == "dev.knative.sources.ping" and r["attrs"]["source"] == "/cron/ticker" for r in ticks)
    assert all(r["data"] == {"tick": True} for r in ticks)
    from datetime import datetime

    missed = [r for r in ticks if stopped < datetime.fromisoformat(r["attrs"]["time"].replace("Z", "+00:00")).timestamp() < restarted - 0.5]
    assert len(missed) <= 1, "only the latest missed tick is caught up"


@pytest.mark.slow
def test_every_accepted_event_survives_a_platform_kill(tmp_path):
    """kill -9 the platform while events stream in; after a restart every event that got a
    202 reaches the function at least once. Prints the duplicates."""
    platform = new_platform(tmp_path)
    platform.deploy(EVENTS, "orders")
    accepted: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        with platform.http(timeout=5) as http:
            n = 0
            while not stop.is_set():
                batch = [event("com.example.order", f"crash-{n + i}") for i in range(5)]
                n += 5
                try:
                    response = http.post(
                        "/v1/events", content=json.dumps(batch), headers={"content-type": "application/cloudevents-batch+json"}
                    )
                except httpx.TransportError:
                    continue
                if response.status_code == 202:
                    accepted.extend(e["id"] for e in batch)

    sender = threading.Thread(target=stream)
    sender.start()
    time.sleep(2)
    port = int(platform.url.rsplit(":", 1)[1])
    platform.process.stop(signal.SIGKILL)
    stop.set()
    sender.join()
    assert len(accepted) > 100
    platform = new_platform(tmp_path, port)
    try:
        wait_for(lambda: set(accepted) <= set(ids(platform, "orders")), timeout=60, message="every accepted event delivered")
    finally:
        platform.process.stop(signal.SIGTERM)
    got = [i for i in ids(platform, "orders") if i.startswith("crash-")]
    duplicates = len(got) - len(set(got))
    print(f"\ncrash test: {len(accepted)} events accepted before kill -9, all delivered; {duplicates} delivered twice")
