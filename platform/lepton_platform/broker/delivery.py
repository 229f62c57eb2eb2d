"""Delivery to one trigger's function: at-least-once, concurrent up to the function's
capacity, retried with the trigger's backoff, dead-lettered after the last attempt.

Each trigger has its own worker, so a slow or failing function never holds up another
trigger's deliveries. Successful deliveries are acknowledged in batches; a crash before the
acknowledgement is written means the event is delivered again (never lost).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from lepton_platform.autoscaler import capacity
from lepton_platform.broker.log import Due
from lepton_platform.broker.triggers import DEAD_LETTER, FORWARD, Trigger

if TYPE_CHECKING:
    from lepton_platform.broker.broker import Broker

logger = logging.getLogger("lepton.platform.broker")


def retryable(code: int) -> bool:
    """Knative's rule: retry on 5xx, 404, 409, 429 and when there was no response at all."""
    return code == 0 or code >= 500 or code in (404, 409, 429)


class TriggerWorker:
    def __init__(self, broker: Broker, trigger: Trigger) -> None:
        self.broker = broker
        self.trigger = trigger
        self.wake = asyncio.Event()
        self.in_flight: set[int] = set()
        self.acked: list[int] = []
        self.next_retry = 0.0
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"trigger-{self.trigger.id}")

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def capacity(self) -> int:
        """As many concurrent deliveries as the function's replicas can take at once."""
        if self.trigger.kind == FORWARD:
            return 64
        return capacity(self.broker.spec_of(self.trigger.function))

    def offer(self, due: Due) -> None:
        """A delivery just stored: start it now if there is room (the hot path, no database
        read), else leave it for the loop to pick up from the database."""
        if len(self.in_flight) < self.capacity() and due.seq not in self.in_flight:
            self.in_flight.add(due.seq)
            asyncio.create_task(self._deliver(due))
        else:
            self.wake.set()

    async def _run(self) -> None:
        log = self.broker.log
        found = await asyncio.to_thread(log.next_due, self.trigger.id) or 0.0
        self.next_retry = min((t for t in (found, self.next_retry) if t), default=0.0)  # a delivery may have set one meanwhile
        while True:
            self.wake.clear()
            try:
                if self.acked:
                    done, self.acked = self.acked, []
                    await asyncio.to_thread(log.ack, self.trigger.id, done)
                    self.in_flight.difference_update(done)
                free = self.capacity() - len(self.in_flight)
                if free > 0:
                    for row in await asyncio.to_thread(log.due, self.trigger.id, free + len(self.in_flight)):
                        if row.seq in self.in_flight:
                            continue
                        if free == 0:
                            break
                        free -= 1
                        self.in_flight.add(row.seq)
                        asyncio.create_task(self._deliver(row))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("trigger %s: delivery loop failed; retrying", self.trigger.id)
                self.next_retry = time.time() + 1.0
            # Asleep until a delivery is offered or ends, a dead letter is queued again, or a
            # retry is due: an idle trigger costs no CPU, however many there are.
            wait = max(0.0, self.next_retry - time.time()) if self.next_retry else None
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except TimeoutError:  # a retry is due (the next round takes it): when is the one after?
                fired = self.next_retry
                try:
                    next_due = await asyncio.to_thread(log.next_due, self.trigger.id, time.time())
                    found = next_due or 0.0
                except Exception:
                    logger.exception("trigger %s: reading its next retry failed", self.trigger.id)
                    found = time.time() + 1.0
                later = self.next_retry if self.next_retry != fired else 0.0  # set by a delivery while we read
                self.next_retry = min((t for t in (found, later) if t), default=0.0)

    async def _deliver(self, row: Due) -> None:
        trigger, broker = self.trigger, self.broker
        attempt = row.attempts + 1
        acked = False
        try:
            extensions = {}
            if trigger.origin == DEAD_LETTER:
                extensions = dead_letter_extensions(await asyncio.to_thread(broker.log.dead_letter_error, trigger.id, row.seq))
            code, message, reply = await broker.send(trigger, row.body, extensions)
            if 200 <= code < 300:
                self.acked.append(row.seq)
                acked = True
                broker.metrics.delivery(trigger, "delivered")
                if reply is not None:
                    await broker.publish([reply])
            elif retryable(code) and attempt <= trigger.delivery.retry:
                due = time.time() + trigger.delivery.backoff_seconds(attempt)
                await asyncio.to_thread(broker.log.retry_at, trigger.id, row.seq, attempt, due, f"{code}: {message}")
                self.next_retry = min(self.next_retry or due, due)
                broker.metrics.delivery(trigger, "retried")
            else:
                companion = f"{trigger.id}-dlq" if trigger.delivery.dead_letter and trigger.origin != DEAD_LETTER else None
                await asyncio.to_thread(broker.log.dead_letter, trigger, row.seq, attempt, code, message, companion)
                broker.metrics.delivery(trigger, "dead_lettered")
                logger.warning("trigger %s: event %s dead-lettered after %d attempts: %s %s", trigger.id, row.seq, attempt, code, message)
                if companion:
                    broker.poke(companion)
        except Exception:
            logger.exception("trigger %s: delivery of event %s failed", trigger.id, row.seq)
        finally:
            if not acked:
                self.in_flight.discard(row.seq)
            self.wake.set()


def dead_letter_extensions(error: dict[str, Any]) -> dict[str, str]:
    """The error as Knative puts it on a dead-lettered event, plus a readable message."""
    import base64

    if not error:
        return {}
    return {
        "knativeerrorcode": str(error.get("code", 0)),
        "knativeerrordest": error.get("trigger", ""),
        "knativeerrordata": base64.b64encode(str(error.get("message", "")).encode()[:1024]).decode(),
        "leptonerrormessage": str(error.get("message", ""))[:1024],
    }
