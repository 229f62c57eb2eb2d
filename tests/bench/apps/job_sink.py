"""Trivial functions for tests/bench/jobs.py: `job-sink` logs when each job's handler starts;
`add` is what `fn.map` and direct calls are compared on."""

import os
import time

import lepton


@lepton.function(name="job-sink", min_scale=1, max_scale=1, concurrency=64)
def job_sink(n: int = 0) -> int:
    os.write(1, f"STARTED {lepton.job_id()} {time.time():.6f}\n".encode())  # to its log, in one write
    return n


@lepton.function(name="job-hold", min_scale=1, max_scale=1, concurrency=1)
def job_hold(seconds: float = 0) -> float:
    """One at a time: a long first job holds the rest in the queue while acceptance is timed."""
    time.sleep(seconds)
    return seconds


@lepton.function(min_scale=1, max_scale=2, concurrency=32)
def add(a: int) -> int:
    return a + 1
