"""Functions that misbehave on purpose, for the fault tests."""

import sys
import time

import lepton


@lepton.function(timeout=1, scale_down_after=30)
def hang() -> dict:
    time.sleep(3600)
    return {"never": True}


@lepton.function(scale_down_after=30)
def flood(megabytes: int = 64) -> dict:
    line = "x" * 1023 + "\n"
    for _ in range(megabytes * 1024):
        sys.stdout.write(line)
    sys.stdout.flush()
    print("flood done", flush=True)
    return {"wrote_mb": megabytes}


@lepton.function(scale_down_after=30)
def slow(seconds: float = 2.0) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}
