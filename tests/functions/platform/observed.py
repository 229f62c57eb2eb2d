"""Functions for the Prometheus test: one that answers, one that fails, one an event wakes."""

import lepton


@lepton.function(public=True, scale_down_after=120)
def ok(n: int = 0) -> int:
    return n


@lepton.function(public=True, scale_down_after=120)
def boom() -> None:
    raise RuntimeError("this function always fails")


@lepton.function(scale_down_after=120, triggers=[lepton.on_event(type="test.observed")])
def observed_sink(event: lepton.CloudEvent) -> None:
    return None
