"""The embedded CloudEvents broker: durable ingest with group commit, triggers, delivery
workers, cron sources, and the drain of bucket events from the storage outbox.

Ingest calls store their events through a group commit (`sqlite.GroupCommit`): everything
queued so far goes in one transaction (one fsync), and all of those callers are answered at
once. Under load, batches grow and the fsync cost is shared; at low rates a lone event
commits immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lepton.runtime.events import FORMAT, STRUCTURED, BadEvent, is_cloudevent_request, parse, to_binary
from lepton.runtime.tracing import TRACEPARENT, TRACESTATE
from lepton.triggers import Delivery
from lepton_platform.asgi import ASGIApp, call
from lepton_platform.broker.cron import run_cron
from lepton_platform.broker.delivery import TriggerWorker
from lepton_platform.broker.index import TriggerIndex
from lepton_platform.broker.log import Event, EventLog
from lepton_platform.broker.triggers import API, DEAD_LETTER, FORWARD, SPEC, Trigger, from_spec
from lepton_platform.config import TracingConfig
from lepton_platform.database import GroupCommit
from lepton_platform.paging import keys_after
from lepton_platform.tracing import Tracing

if TYPE_CHECKING:
    from pathlib import Path

    from lepton.spec import FunctionSpec
    from lepton_platform.metrics import PlatformMetrics
    from lepton_platform.outbox import Outbox

logger = logging.getLogger("lepton.platform.broker")
RETENTION = 24 * 3600.0
OUTBOX_BACKSTOP = 1.0  # the outbox says when it is written; this is only a safety net


class Broker:
    def __init__(
        self,
        path: Path,
        token: str,
        metrics: PlatformMetrics,
        outbox: Outbox,
        spec_of: Callable[[str], FunctionSpec | None],
        *,
        forward_to: str | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.log = EventLog(path)
        self.token = token
        self.metrics = metrics
        self.outbox = outbox
        self.spec_of = spec_of
        self.forward_to = forward_to
        self.tracing = tracing or Tracing(TracingConfig())  # none given: traces pass through, no spans
        self._forwarder: Any = None
        self.app: ASGIApp | None = None
        self.triggers: dict[str, Trigger] = {t.id: t for t in self.log.triggers()}
        self.index = TriggerIndex(self.triggers.values())
        self.workers: dict[str, TriggerWorker] = {}
        self.crons: dict[str, asyncio.Task[None]] = {}
        self.commits = GroupCommit(self.log.database)
        metrics.collect_from(self.backlog_families)
        self._outbox_written = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        if self.forward_to:
            # Knative backend: every accepted event goes on, durably and with retries, to the
            # Knative Broker, whose Triggers deliver it.
            forward = Trigger(FORWARD, "", FORWARD, FORWARD, delivery=Delivery(retry=10, backoff="exponential", delay=0.5))
            gone = await asyncio.to_thread(self.log.replace_triggers, "", (FORWARD,), [forward])
            await self._install([forward], gone)
        loop = asyncio.get_running_loop()
        self.outbox.listener = lambda: loop.call_soon_threadsafe(self._outbox_written.set)
        self.commits.start()
        self._tasks = [
            asyncio.create_task(self._drain_outbox(), name="broker-outbox"),
            asyncio.create_task(self._housekeeping(), name="broker-housekeeping"),
        ]
        for trigger in self.triggers.values():
            if trigger.id not in self.workers:
                self._run(trigger)

    async def stop(self) -> None:
        self.outbox.listener = None
        for task in [*self._tasks, *self.crons.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self.crons.values(), *(w.stop() for w in self.workers.values()), return_exceptions=True)
        await self.commits.stop()
        if self._forwarder is not None:
            await self._forwarder.aclose()
        self.log.close()

    def _run(self, trigger: Trigger) -> None:
        worker = TriggerWorker(self, trigger)
        self.workers[trigger.id] = worker
        worker.start()
        if trigger.kind == "cron":
            self.crons[trigger.id] = asyncio.create_task(run_cron(self, trigger), name=f"cron-{trigger.id}")

    async def _stop(self, trigger_id: str) -> None:
        """Its worker and cron source end (its deliveries went with it from the database)."""
        worker = self.workers.pop(trigger_id, None)
        cron = self.crons.pop(trigger_id, None)
        if cron:
            cron.cancel()
        if worker:
            await worker.stop()
        self.metrics.forget_trigger(trigger_id)

    async def _install(self, triggers: list[Trigger], gone: list[str]) -> None:
        changed = [t for t in triggers if self.triggers.get(t.id) != t]
        for tid in gone:
            self.triggers.pop(tid, None)
        for trigger in changed:
            self.triggers[trigger.id] = trigger
        # One new index for the whole change, before any await: an ingest in between sees
        # the triggers as they are now, never half of the change.
        self.index = TriggerIndex(self.triggers.values())
        for tid in [*gone, *(t.id for t in changed)]:
            await self._stop(tid)
        for trigger in changed:
            self._run(trigger)

    # -- triggers ---------------------------------------------------------------------------

    async def set_function_triggers(self, spec: FunctionSpec) -> None:
        """The routed revision's `triggers=[...]` become the function's spec triggers."""
        triggers = from_spec(spec)
        gone = await asyncio.to_thread(self.log.replace_triggers, spec.name, (SPEC, DEAD_LETTER), triggers)
        await self._install(triggers, gone)

    async def remove_function(self, function: str) -> None:
        gone = await asyncio.to_thread(self.log.replace_triggers, function, (SPEC, API, DEAD_LETTER), [])
        await self._install([], gone)

    async def add_triggers(self, triggers: list[Trigger]) -> None:
        await asyncio.to_thread(self.log.replace_triggers, triggers[0].declared_by, (), triggers)
        await self._install(triggers, [])

    async def delete_trigger(self, trigger_id: str) -> bool:
        ids = [tid for tid in (trigger_id, f"{trigger_id}-dlq") if tid in self.triggers]
        if not ids:
            return False
        await asyncio.to_thread(self.log.delete_triggers, ids)
        await self._install([], ids)
        return True

    def poke(self, trigger_id: str) -> None:
        worker = self.workers.get(trigger_id)
        if worker:
            worker.wake.set()

    # -- ingest -----------------------------------------------------------------------------

    async def publish(self, events: list[Event], *, target: str | None = None, tick: float | None = None) -> list[bool]:
        """Store events durably (and the deliveries they owe); True for each new one, False
        for a duplicate (same source and id as an event already accepted)."""
        if not events:
            return []
        batch = [(e, target, tick) for e in events]
        index = self.index  # taken here, on the event loop, which replaces it when triggers change
        try:
            fresh, owed = await self.commits.run(lambda db: self.log.write(db, batch, index))
        except Exception:
            logger.exception("could not store %d events", len(batch))
            raise
        self.metrics.events_accepted.inc(sum(fresh))
        for tid, due in owed:
            worker = self.workers.get(tid)
            if worker:
                worker.offer(due)
        return fresh

    async def _drain_outbox(self) -> None:
        """Move bucket events from the storage outbox into the broker. Removing them only
        after they are stored (duplicates are ignored) means none is lost in between."""
        while True:
            self._outbox_written.clear()
            try:
                items = await asyncio.to_thread(self.outbox.peek, 500)
                if items:
                    await self.publish([Event.from_json(event) for _, event in items])
                    await asyncio.to_thread(self.outbox.remove, items[-1][0])
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("draining bucket events failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._outbox_written.wait(), OUTBOX_BACKSTOP)

    async def _housekeeping(self) -> None:
        """Events past the dedup window go, every ten minutes. (Backlogs are read when
        /metrics is scraped: `backlog_families`.)"""
        while True:
            await asyncio.sleep(600)
            try:
                await asyncio.to_thread(self.log.forget_old, RETENTION)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("broker housekeeping failed")

    def backlog_families(self) -> list[Any]:
        """Every trigger's deliveries owed and the age of the oldest, read from SQLite when
        /metrics is scraped: one query then, nothing at all between scrapes."""
        from prometheus_client.core import GaugeMetricFamily

        pending = GaugeMetricFamily("lepton_trigger_pending", "Deliveries a trigger still owes.", labels=["trigger", "function"])
        lag = GaugeMetricFamily(
            "lepton_trigger_lag_seconds", "Age of the oldest event a trigger still owes.", labels=["trigger", "function"]
        )
        backlog = self.log.backlog()
        for tid, trigger in sorted(self.triggers.items()):
            count, age = backlog.get(tid, (0, 0.0))
            pending.add_metric([tid, trigger.function], count)
            lag.add_metric([tid, trigger.function], age)
        return [pending, lag]

    # -- delivery ---------------------------------------------------------------------------

    async def send(self, trigger: Trigger, body: bytes, extensions: dict[str, str]) -> tuple[int, str, Event | None]:
        """One delivery attempt through the platform's own request path (so it wakes a
        function at zero); returns the status (0: no response), a message, and a reply."""
        from cloudevents.core.v1.event import CloudEvent

        if trigger.kind == FORWARD:
            return await self._forward(body)
        assert self.app is not None, "the broker needs the request path before delivering"
        event = FORMAT.read(None, body)
        data = event.get_data()
        if "datacontenttype" not in event.get_attributes() and data is not None and not isinstance(data, (bytes, str)):
            extensions = {"datacontenttype": "application/json", **extensions}  # structured JSON data implies it
        if extensions:
            event = CloudEvent({**event.get_attributes(), **extensions}, data)
        headers, payload = to_binary(event)
        headers["authorization"] = f"Bearer {self.token}"
        # The distributed-tracing extension's HTTP binding: its traceparent as the request's own.
        trace = self.tracing.delivery(trigger.id, trigger.function, event.get_extension(TRACEPARENT), event.get_extension(TRACESTATE))
        headers.update(trace.headers())
        spec = self.spec_of(trigger.function)
        timeout = trigger.delivery.timeout or (spec.timeout if spec else 30.0)
        status = 0
        try:
            status, response_headers, response = await asyncio.wait_for(
                call(self.app, "POST", f"/fn/{trigger.function}", headers, payload), timeout
            )
        except TimeoutError:
            return 0, f"no response within {timeout:g}s", None
        except Exception as exc:
            return 0, f"{type(exc).__name__}: {exc}", None
        finally:
            self.tracing.end(trace, status)
        if 200 <= status < 300:
            reply = None
            if status == 200 and is_cloudevent_request(response_headers):
                try:
                    reply = Event.from_cloudevent(parse(response_headers, response))
                except BadEvent as exc:
                    logger.warning("trigger %s: ignoring a malformed reply: %s", trigger.id, exc)
            return status, "", reply
        return status, _detail(response), None

    async def _forward(self, body: bytes) -> tuple[int, str, Event | None]:
        import httpx

        assert self.forward_to is not None
        if self._forwarder is None:
            self._forwarder = httpx.AsyncClient(timeout=30)  # one pooled client for every forward
        try:
            response = await self._forwarder.post(self.forward_to, content=body, headers={"content-type": STRUCTURED})
        except httpx.HTTPError as exc:
            return 0, f"{type(exc).__name__}: {exc}", None
        return response.status_code, response.text[:500], None

    def status(self, *, limit: int | None = None, after: str | None = None) -> list[dict[str, Any]]:
        """Triggers by id (those after `after`, at most `limit`) with their backlog."""
        chosen = keys_after(sorted(self.triggers), after, len(self.triggers) if limit is None else limit)
        backlog = self.log.backlog()
        return [
            {
                **self.triggers[tid].to_json(),
                "pending": backlog.get(tid, (0, 0.0))[0],
                "lag_seconds": round(backlog.get(tid, (0, 0.0))[1], 3),
            }
            for tid in chosen
        ]


def _detail(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail", "")
        return detail if isinstance(detail, str) else json.dumps(detail)
    except (ValueError, AttributeError):
        return body[:500].decode(errors="replace")
