"""Event-driven functions that record what they receive as `RECEIVED {json}` lines in their
logs (a sandboxed replica can write nowhere else the test could read)."""

import json
import os
import time

import lepton


def record(kind: str, event: lepton.CloudEvent, **extra: object) -> None:
    attrs = {k: str(v) for k, v in event.get_attributes().items()}
    line = "RECEIVED " + json.dumps({"fn": kind, "at": time.time(), "attrs": attrs, **extra}) + "\n"
    os.write(1, line.encode())  # one write to the replica's log (O_APPEND): lines never interleave


@lepton.function(triggers=[lepton.on_event(type="com.example.order")], max_scale=2, concurrency=8)
def orders(event: lepton.CloudEvent) -> None:
    record("orders", event, data=event.get_data())


@lepton.function(
    triggers=[
        lepton.on_event(
            filters=[{"prefix": {"type": "com.example.flaky"}}],
            delivery=lepton.Delivery(retry=2, backoff="linear", delay=0.3, dead_letter="dead-letters"),
        )
    ]
)
def flaky(event: lepton.CloudEvent) -> None:
    record("flaky", event)
    raise RuntimeError("always fails")


@lepton.function(name="dead-letters")
def dead_letters(event: lepton.CloudEvent) -> None:
    record("dead-letters", event)


@lepton.function(triggers=[lepton.on_event(type="com.example.ping")])
def replier(event: lepton.CloudEvent) -> lepton.CloudEvent:
    return lepton.CloudEvent({"type": "com.example.pong", "source": "/replier", "id": f"pong-{event.get_id()}"}, {"n": 1})


@lepton.function(triggers=[lepton.on_event(type="com.example.pong")])
def pongs(event: lepton.CloudEvent) -> None:
    record("pongs", event)


@lepton.function(buckets=["images"], triggers=[lepton.on_bucket("images", prefix="in/")])
def uploads(event: lepton.CloudEvent) -> None:
    record("uploads", event, data=event.get_data())


@lepton.function(max_scale=1, concurrency=1, triggers=[lepton.on_event(type="com.example.slow")])
def sluggish(event: lepton.CloudEvent) -> None:
    time.sleep(1.5)
    record("sluggish", event)
