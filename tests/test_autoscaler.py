"""The autoscaler's pure core (platform/lepton_platform/autoscaler.py): how many replicas a
function should have for a given demand. No clocks and no processes: each test states the
averages, the ready count and the idle time, and checks the decision."""

from __future__ import annotations

import math

import pytest

from lepton.spec import Batch, FunctionSpec
from lepton_platform.autoscaler import (
    MAX_STABLE_WINDOW,
    MIN_STABLE_WINDOW,
    ConcurrencyWindow,
    Decision,
    capacity,
    decide,
    stable_window,
)


def spec(**options: object) -> FunctionSpec:
    return FunctionSpec(name="fn", **options)


def want(
    function: FunctionSpec,
    *,
    stable_avg: float = 0.0,
    panic_avg: float = 0.0,
    ready: int = 0,
    idle_for: float = 0.0,
    in_flight: int = 0,
    was_panicking: bool = False,
    calm_for: float = 0.0,
) -> Decision:
    return decide(
        function,
        stable_avg=stable_avg,
        panic_avg=panic_avg,
        ready=ready,
        idle_for=idle_for,
        in_flight=in_flight,
        was_panicking=was_panicking,
        calm_for=calm_for,
    )


# -- target arithmetic --------------------------------------------------------------------------


@pytest.mark.parametrize("stable_avg, desired", [(10, 1), (10.01, 2), (20, 2), (25, 3), (29.99, 3), (30, 3), (30.5, 4)])
def test_desired_replicas_are_average_in_flight_over_target_rounded_up(stable_avg, desired):
    # The default target is 10 in flight per replica; ready covers the demand, so no panic.
    assert want(spec(), stable_avg=stable_avg, ready=4) == Decision(desired, False)


@pytest.mark.parametrize(
    "options, target",
    [
        ({}, 10.0),
        ({"concurrency": 10}, 7.0),  # 70% of the hard limit, Knative's target-utilization default
        ({"concurrency": 1}, 1.0),  # never below one request per replica
        ({"concurrency": 10, "target": 4}, 4.0),  # an explicit target wins
        ({"batch": Batch(max_size=8)}, 100.0),
    ],
)
def test_the_target_comes_from_target_or_70_percent_of_concurrency(options, target):
    function = spec(**options)
    assert function.autoscale_target == target
    assert want(function, stable_avg=target * 3, ready=3).desired == 3
    assert want(function, stable_avg=target * 3 + 0.01, ready=3).desired == 4


def test_float_noise_in_the_target_does_not_add_a_replica():
    function = spec(concurrency=3)  # target 3 * 0.7 = 2.0999999999999996
    assert 6.3 / function.autoscale_target > 3  # what a bare ceil would round up to 4
    assert want(function, stable_avg=6.3, ready=3).desired == 3


def test_the_panic_average_alone_can_ask_for_more_replicas_without_panicking():
    # 30 in flight over the panic window asks for 3, under twice the 2 ready: no panic, but 3.
    assert want(spec(), stable_avg=5, panic_avg=30, ready=2) == Decision(3, False)


# -- panic mode -----------------------------------------------------------------------------------


def test_panic_mode_starts_when_the_burst_asks_for_twice_the_ready_replicas():
    assert want(spec(), panic_avg=40, ready=2) == Decision(4, True)  # 4 >= 2 x 2
    assert want(spec(), panic_avg=30, ready=2) == Decision(3, False)  # 3 < 2 x 2


def test_panic_mode_from_zero_needs_a_burst_of_two_replicas_worth():
    assert want(spec(), panic_avg=20, in_flight=20) == Decision(2, True)
    assert want(spec(), panic_avg=10, in_flight=10) == Decision(1, False)


@pytest.mark.parametrize("stable_avg", [0.0, 5.0, 20.0, 59.0])
@pytest.mark.parametrize("panic_avg", [0.5, 10.0, 35.0])
def test_panic_mode_never_scales_down(stable_avg, panic_avg):
    # Six replicas ready after a burst; whatever the averages say now, while the burst lasts
    # (anything in the panic window) the count does not drop.
    decision = want(spec(), stable_avg=stable_avg, panic_avg=panic_avg, ready=6, in_flight=1, was_panicking=True)
    assert decision.desired >= 6
    assert decision.panic or stable_avg > 50, "it leaves panic only when the stable window asks for the 6 itself"


def test_panic_mode_keeps_the_ready_replicas_when_the_stable_window_asks_for_fewer():
    assert want(spec(), stable_avg=10, panic_avg=15, ready=6, in_flight=1, was_panicking=True) == Decision(6, True)


def test_a_fresh_panic_scales_out_to_the_burst_not_down_to_the_stable_average():
    assert want(spec(), stable_avg=5, panic_avg=80, ready=4, in_flight=80) == Decision(8, True)


def test_panic_mode_ends_a_stable_window_after_the_burst_and_then_scales_down():
    assert want(spec(), stable_avg=10, panic_avg=0, ready=6, was_panicking=True, calm_for=30) == Decision(6, True)
    assert want(spec(), stable_avg=10, panic_avg=0, ready=6, was_panicking=True, calm_for=60) == Decision(1, False)


def test_panic_mode_ends_once_the_stable_window_asks_for_the_ready_replicas():
    assert want(spec(), stable_avg=40, panic_avg=40, ready=4, in_flight=40, was_panicking=True) == Decision(4, False)


# -- bounds ---------------------------------------------------------------------------------------


def test_min_scale_is_a_floor_even_when_idle_for_ever():
    function = spec(min_scale=2, scale_down_after=5)
    assert want(function, idle_for=math.inf) == Decision(2, False)
    assert want(function, stable_avg=10, ready=2) == Decision(2, False)  # demand for one: still two
    assert want(function, stable_avg=30, ready=2).desired == 3  # above the floor, it scales


def test_max_scale_caps_the_stable_and_the_panic_decision():
    function = spec(max_scale=3)
    assert want(function, stable_avg=1000, ready=3) == Decision(3, False)
    assert want(function, panic_avg=1000, ready=1, in_flight=1000) == Decision(3, True)
    assert want(function, stable_avg=30, ready=3).desired == 3  # exactly at the cap
    # max_scale lowered by a new revision while panicking with more ready: the cap still wins.
    assert want(function, panic_avg=50, ready=5, in_flight=5, was_panicking=True) == Decision(3, True)


# -- scale to zero --------------------------------------------------------------------------------


def test_scale_to_zero_only_after_scale_down_after():
    function = spec(scale_down_after=30)
    assert want(function, idle_for=0).desired == 1
    assert want(function, idle_for=29.99).desired == 1
    assert want(function, idle_for=30).desired == 0
    assert want(function, idle_for=300).desired == 0


def test_an_old_average_does_not_keep_replicas_once_idle_long_enough():
    assert want(spec(scale_down_after=30), stable_avg=25, ready=3, idle_for=30).desired == 0


def test_a_request_in_flight_keeps_one_replica_however_long_ago_it_arrived():
    assert want(spec(scale_down_after=30), in_flight=1, idle_for=3600).desired == 1


def test_a_request_wakes_a_function_at_zero():
    assert want(spec(), in_flight=1, idle_for=math.inf) == Decision(1, False)


# -- the window of samples ------------------------------------------------------------------------


def test_stable_window_follows_scale_down_after_within_its_bounds():
    assert stable_window(spec(scale_down_after=30)) == 30
    assert stable_window(spec(scale_down_after=0.5)) == MIN_STABLE_WINDOW
    assert stable_window(spec(scale_down_after=3600)) == MAX_STABLE_WINDOW


def test_the_window_averages_the_stable_span_and_its_last_tenth_for_panic():
    window = ConcurrencyWindow(tick=0.1, window=2.0)  # 20 samples; panic over the last 2
    assert window.averages() == (0.0, 0.0)
    for _ in range(25):
        window.add(0)
    window.add(10)
    window.add(10)
    stable, panic = window.averages()
    assert stable == pytest.approx(1.0)  # the 20 newest samples (7 dropped) hold 20 in flight
    assert panic == pytest.approx(10.0)


def test_raising_the_last_sample_counts_a_burst_between_ticks():
    window = ConcurrencyWindow(tick=0.1, window=2.0)
    window.raise_last(6)  # no sample yet: it becomes the first
    window.add(2)
    window.raise_last(8)
    window.raise_last(3)  # never lowers it
    assert list(window.samples) == [6, 8]
    assert window.averages() == (7.0, 7.0)


def test_capacity_is_max_scale_times_the_per_replica_limit():
    assert capacity(None) == 4
    assert capacity(spec(concurrency=4, max_scale=3)) == 12
    assert capacity(spec(max_scale=3)) == 30  # no hard limit: the target, rounded up
    assert capacity(spec(concurrency=3, max_scale=2)) == 6
    assert capacity(spec(concurrency=100, max_scale=10)) == 256  # the platform's own ceiling


def test_panic_mode_ends_after_a_stable_window_of_light_traffic():
    # Ten minutes of ticks (0.1 s each, the fleet's TICK) of a steady 10 in flight, one
    # replica's worth, after a burst left 6 ready: both windows agree on 1 replica all along.
    function = spec(scale_down_after=60)
    ready, panicking = 6, True
    for tick in range(6000):
        decision = want(function, stable_avg=10, panic_avg=10, ready=ready, in_flight=10, was_panicking=panicking, calm_for=tick * 0.1)
        ready, panicking = decision.desired, decision.panic
        if tick * 0.1 < 59.9:
            assert (ready, panicking) == (6, True), f"panic holds the replicas a stable window long (at {tick * 0.1:.1f} s)"
    assert (ready, panicking) == (1, False)
