"""A trace across functions: `publish` sends an event through the platform's broker, `consume`
is triggered by it; `job-done` hears of finished async jobs, `reply` answers an event with
one. Each records the trace it ran in as a `TRACED {json}` line in its log (the one place a
sandboxed replica writes that a test can read) and `publish` also returns it."""

import json
import logging
import os
import time

import lepton
from lepton.runtime import tracing

logger = logging.getLogger("chain")


def here() -> dict:
    context = tracing.current.get()
    return {"trace_id": tracing.trace_id.get(), "traceparent": context.header() if context else None}


def record(fn: str, event: lepton.CloudEvent | None = None, **extra: object) -> None:
    attrs = {k: str(v) for k, v in event.get_attributes().items()} if event is not None else {}
    line = "TRACED " + json.dumps({"fn": fn, "at": time.time(), "attrs": attrs, **here(), **extra}) + "\n"
    os.write(1, line.encode())  # one write to the replica's log (O_APPEND): lines never interleave


@lepton.function(scale_down_after=60)
def publish(mark: str, send: bool = True) -> dict:
    """Sync, so the handler runs in a thread: its trace must follow it there."""
    logger.warning("publishing %s", mark)
    if send:
        event = {"specversion": "1.0", "id": mark, "source": "/tests/tracing", "type": "dev.test.traced", "data": {"mark": mark}}
        with lepton.Client() as client:
            client.request("POST", "/v1/events", json=event, headers={"content-type": "application/cloudevents+json"})
    record("publish", mark=mark)
    return here()


@lepton.function(triggers=[lepton.on_event(type="dev.test.traced")], scale_down_after=60)
async def consume(event: lepton.CloudEvent) -> None:
    record("consume", event)


@lepton.function(triggers=[lepton.on_event(type="dev.lepton.job.succeeded", source="/jobs/publish")], scale_down_after=60)
def job_done(event: lepton.CloudEvent) -> None:
    record("job-done", event)


@lepton.function(triggers=[lepton.on_event(type="dev.test.ask")], scale_down_after=60)
def reply(event: lepton.CloudEvent) -> lepton.CloudEvent:
    record("reply", event)
    return lepton.CloudEvent({"type": "dev.test.answer", "source": "/tests/tracing", "id": f"answer-{event.get_id()}"}, {})


@lepton.function(triggers=[lepton.on_event(type="dev.test.answer")], scale_down_after=60)
def answered(event: lepton.CloudEvent) -> None:
    record("answered", event)
