"""30 s of the soak benchmark (tests/bench/soak.py): mixed invocations, events and uploads with
replicas scaling up and down; nothing fails, nothing is lost, the platform's memory stays flat."""

from __future__ import annotations

import pytest

from tests.bench.soak import soak


@pytest.mark.slow
def test_thirty_seconds_of_mixed_load():
    result = soak(30)
    print(f"\nsoak: {result}")
    assert result["errors"] == []
    assert result["requests"] > 500 and result["uploads"] > 100 and result["events_accepted"] > 1000
    assert result["events_delivered"] == result["events_accepted"]
    assert result["peak_replicas"] >= 2, "the bursts should scale `work` out"
    assert result["rss_end_mb"] - result["rss_start_mb"] < 25, "platform memory should stay flat"
