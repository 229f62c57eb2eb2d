"""Cron ticks (platform/lepton_platform/broker/cron.py), in-process on a fake clock: when each
tick fires, in the schedule's time zone and across DST changes, what a restart catches up,
and what each tick's event says. The broker is a stand-in that records what is published;
`datetime.now`, `time.time` and `asyncio.sleep` in the cron module read and move one clock."""

from __future__ import annotations

import asyncio
import json
import types
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lepton.triggers import CronTrigger
from lepton_platform.broker import cron
from lepton_platform.broker.triggers import Trigger

UTC = UTC


class Enough(BaseException):
    """Ends the cron loop once the test has seen the ticks it wants (not an Exception, which
    the loop would log and carry on after)."""


class Clock:
    def __init__(self, start: datetime, pause: float = 0.0) -> None:
        self.now = start.timestamp()
        self.pause = pause  # extra seconds that pass during the first sleep (a suspended machine)
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now


class Broker:
    """Stands in for the broker: the last stored tick, and what is published."""

    def __init__(self, clock: Clock, last: datetime | None, fires: int) -> None:
        self.clock = clock
        self.fires = fires
        self.published: list[tuple[Any, str, float]] = []
        self.early: list[float] = []  # ticks published before their time (none should be)
        self.log = types.SimpleNamespace(cron_last=lambda trigger_id: None if last is None else last.timestamp())

    async def publish(self, events: list[Any], *, target: str, tick: float) -> list[bool]:
        (event,) = events
        if tick > self.clock.now + 1e-6:
            self.early.append(tick)
        self.published.append((event, target, tick))
        return [True]


def trigger(schedule: str, zone: str = "UTC", data: Any = None) -> Trigger:
    return Trigger("ticker-1a2b3c", "ticker", kind="cron", cron=CronTrigger(schedule=schedule, timezone=zone, data=data))


def run(
    monkeypatch: pytest.MonkeyPatch,
    schedule: str,
    start: datetime,
    *,
    zone: str = "UTC",
    last: datetime | None = None,
    fires: int = 3,
    pause: float = 0.0,
    data: Any = None,
) -> tuple[list[datetime], Clock, Broker]:
    """Run the cron loop from `start` until it has published `fires` ticks; the ticks in UTC."""
    clock = Clock(start, pause)
    broker = Broker(clock, last, fires)

    class FakeDatetime(datetime):
        @classmethod
        def now(cls, tz=None):  # datetime.now's signature
            return datetime.fromtimestamp(clock.now, tz)

    async def sleep(seconds: float) -> None:
        if len(broker.published) >= fires or len(clock.sleeps) > 1000:  # bounded if nothing is published
            raise Enough
        clock.sleeps.append(seconds)
        clock.now += seconds + (clock.pause if len(clock.sleeps) == 1 else 0.0)

    async def to_thread(function: Any, *args: Any) -> Any:
        return function(*args)

    monkeypatch.setattr(cron, "datetime", FakeDatetime)
    monkeypatch.setattr(cron, "time", types.SimpleNamespace(time=clock.time))
    monkeypatch.setattr(cron, "asyncio", types.SimpleNamespace(sleep=sleep, to_thread=to_thread))

    async def loop() -> None:
        try:
            await cron.run_cron(broker, trigger(schedule, zone, data))  # type: ignore[arg-type]
        except Enough:
            pass

    asyncio.run(loop())
    assert broker.early == [], "a tick is never sent before its time"
    ticks = [datetime.fromtimestamp(tick, UTC) for _, _, tick in broker.published]
    return ticks, clock, broker


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_ticks_fire_at_each_schedule_time_after_now(monkeypatch):
    ticks, clock, _ = run(monkeypatch, "*/15 * * * *", at("2024-01-10 10:07:30"))
    assert ticks == [at("2024-01-10 10:15"), at("2024-01-10 10:30"), at("2024-01-10 10:45")]
    assert clock.sleeps[:3] == [450, 900, 900]  # until each tick, not a fixed period from start


def test_each_tick_is_a_ping_event_named_by_trigger_and_time(monkeypatch):
    _, _, broker = run(monkeypatch, "0 * * * *", at("2024-01-10 10:59:59"), fires=1, data={"tick": True})
    ((event, target, tick),) = broker.published
    assert target == "ticker-1a2b3c" and tick == at("2024-01-10 11:00").timestamp()
    assert event.attrs["id"] == "ticker-1a2b3c/2024-01-10T11:00:00Z"
    assert event.attrs["time"] == "2024-01-10T11:00:00Z"
    assert (event.attrs["type"], event.attrs["source"]) == ("dev.knative.sources.ping", "/cron/ticker")
    assert json.loads(event.body)["data"] == {"tick": True}


@pytest.mark.parametrize(
    "zone, first",
    [
        ("UTC", "2024-01-10 09:00"),
        ("America/New_York", "2024-01-10 14:00"),  # 09:00 EST is UTC-5
        ("Asia/Kolkata", "2024-01-11 03:30"),  # 09:00 IST is UTC+5:30; today's has passed
        ("Australia/Sydney", "2024-01-10 22:00"),  # 09:00 AEDT (UTC+11) on the 11th
    ],
)
def test_the_schedule_is_read_in_its_time_zone(monkeypatch, zone, first):
    ticks, _, _ = run(monkeypatch, "0 9 * * *", at("2024-01-10 06:00"), zone=zone, fires=1)
    assert ticks == [at(first)]


def test_a_daily_tick_keeps_its_local_hour_when_the_clocks_go_forward(monkeypatch):
    # New York goes from EST (UTC-5) to EDT (UTC-4) at 02:00 on 10 March 2024.
    ticks, _, _ = run(monkeypatch, "0 9 * * *", at("2024-03-09 12:00"), zone="America/New_York")
    assert ticks == [at("2024-03-09 14:00"), at("2024-03-10 13:00"), at("2024-03-11 13:00")]
    assert ticks[1] - ticks[0] == timedelta(hours=23)


def test_a_daily_tick_keeps_its_local_hour_when_the_clocks_go_back(monkeypatch):
    # ... and back to EST at 02:00 on 3 November 2024.
    ticks, _, _ = run(monkeypatch, "0 9 * * *", at("2024-11-02 12:00"), zone="America/New_York")
    assert ticks == [at("2024-11-02 13:00"), at("2024-11-03 14:00"), at("2024-11-04 14:00")]
    assert ticks[1] - ticks[0] == timedelta(hours=25)


@pytest.mark.parametrize("start", ["2024-11-03 04:10", "2024-03-10 05:10"])
def test_an_interval_keeps_its_spacing_through_a_dst_change(monkeypatch, start):
    # Through New York's repeated hour (01:00-02:00 twice) and its skipped one (02:00-03:00):
    # every 30 minutes of real time, none twice and none left out.
    ticks, _, _ = run(monkeypatch, "*/30 * * * *", at(start), zone="America/New_York", fires=8)
    assert ticks[0] == at(start) + timedelta(minutes=20)
    assert [b - a for a, b in zip(ticks, ticks[1:])] == [timedelta(minutes=30)] * 7


def test_a_restart_sends_only_the_latest_missed_tick_then_follows_the_schedule(monkeypatch):
    # Down from just after 10:00 until 10:05:30: 10:01 ... 10:05 were missed.
    ticks, clock, _ = run(monkeypatch, "* * * * *", at("2024-01-10 10:05:30"), last=at("2024-01-10 10:00"))
    assert ticks == [at("2024-01-10 10:05"), at("2024-01-10 10:06"), at("2024-01-10 10:07")]
    assert clock.sleeps[0] == 30  # the catch-up went out at once, before the first wait


def test_a_restart_right_after_a_tick_does_not_send_it_again(monkeypatch):
    ticks, _, _ = run(monkeypatch, "* * * * *", at("2024-01-10 10:05:30"), last=at("2024-01-10 10:05"), fires=2)
    assert ticks == [at("2024-01-10 10:06"), at("2024-01-10 10:07")]


def test_a_new_cron_trigger_does_not_fire_for_the_past(monkeypatch):
    ticks, _, _ = run(monkeypatch, "* * * * *", at("2024-01-10 10:05:30"), last=None, fires=1)
    assert ticks == [at("2024-01-10 10:06")]


def test_a_restart_in_another_time_zone_catches_up_the_local_tick(monkeypatch):
    # 09:00 New York (14:00 UTC) was missed while down from 13:00 to 15:00 UTC.
    ticks, _, _ = run(monkeypatch, "0 9 * * *", at("2024-01-10 15:00"), zone="America/New_York", last=at("2024-01-09 14:00"), fires=2)
    assert ticks == [at("2024-01-10 14:00"), at("2024-01-11 14:00")]


def test_a_pause_sends_at_most_the_latest_missed_tick(monkeypatch):
    # Waiting for 10:01, the machine sleeps for an hour: the loop wakes at 11:01:00.
    ticks, _, _ = run(monkeypatch, "* * * * *", at("2024-01-10 10:00:30"), pause=3600, fires=4)
    woke = at("2024-01-10 11:01")
    assert len([t for t in ticks if t < woke]) <= 1, f"{len(ticks)} ticks, the first {ticks[:3]}"
    assert ticks[-1] > woke
