"""Cron sources (Knative PingSource semantics): at each tick of the schedule, in its time
zone, the trigger's function gets a `dev.knative.sources.ping` event carrying `data`.

A tick's event id is derived from the trigger and the tick time, and the last tick is stored
with the event, so a restart never sends a tick twice. A tick missed while the platform was
down, or while the process was suspended, is sent once when it comes back (only the latest
one, like a PingSource catching up).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from croniter import croniter

from lepton_platform.broker.log import Event
from lepton_platform.broker.triggers import Trigger

if TYPE_CHECKING:
    from lepton_platform.broker.broker import Broker

logger = logging.getLogger("lepton.platform.cron")
PING = "dev.knative.sources.ping"


def tick_event(trigger: Trigger, tick: datetime) -> Event:
    assert trigger.cron is not None
    stamp = tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return Event.from_json(
        {
            "specversion": "1.0",
            "id": f"{trigger.id}/{stamp}",
            "source": f"/cron/{trigger.function}",
            "type": PING,
            "time": stamp,
            "datacontenttype": "application/json",
            "data": trigger.cron.data,
        }
    )


async def run_cron(broker: Broker, trigger: Trigger) -> None:
    assert trigger.cron is not None
    zone = ZoneInfo(trigger.cron.timezone)
    last = await asyncio.to_thread(broker.log.cron_last, trigger.id)
    now = datetime.now(zone)
    if last is not None:
        missed = croniter(trigger.cron.schedule, now).get_prev(datetime)
        if missed.timestamp() > last + 1e-3:
            await _fire(broker, trigger, missed)
    ticks = croniter(trigger.cron.schedule, now)
    while True:
        tick = ticks.get_next(datetime)
        await asyncio.sleep(max(0.0, tick.timestamp() - time.time()))
        if time.time() - tick.timestamp() > 1.0:  # woke late (suspended, clock stepped): the latest tick only, as after a restart
            now = datetime.now(zone)
            latest = croniter(trigger.cron.schedule, now).get_prev(datetime)
            if latest > tick:
                tick, ticks = latest, croniter(trigger.cron.schedule, now)
        await _fire(broker, trigger, tick)


async def _fire(broker: Broker, trigger: Trigger, tick: datetime) -> None:
    try:
        await broker.publish([tick_event(trigger, tick)], target=trigger.id, tick=tick.timestamp())
    except Exception:
        logger.exception("cron trigger %s: tick %s could not be stored", trigger.id, tick)
