"""Functions whose output tests/embedded/test_logs.py reads back."""

import logging
import os
import sys
import threading
import time

import lepton

logger = logging.getLogger("logs-test")


@lepton.function(scale_down_after=60)
def writers(marker: str) -> str:
    """A line from each kind of writer, tagged with `marker`; returns the replica's id."""
    print(f"PRINT {marker}")
    logger.warning("LOGGING %s", marker)
    sys.stderr.write(f"STDERR {marker}\n")
    os.write(1, f"FD1 {marker}\n".encode())
    os.write(2, f"FD2 {marker}\n".encode())
    return os.environ["LEPTON_REPLICA"]


@lepton.function(name="ticker", min_scale=2, max_scale=2)
class Ticker:
    """Two replicas, each printing a numbered tick every 50 ms from its setup on."""

    def setup(self) -> None:
        threading.Thread(target=self._tick, daemon=True).start()

    @staticmethod
    def _tick() -> None:
        n = 0
        while True:
            print(f"TICK {n}", flush=True)
            n += 1
            time.sleep(0.05)

    def __call__(self) -> str:
        return os.environ["LEPTON_REPLICA"]


@lepton.function(scale_down_after=60)
def chatty(lines: int) -> int:
    for n in range(lines):
        print(f"CHATTY {n:06d} " + "c" * 200)
    return lines


@lepton.function(scale_down_after=1)
def goodbye(marker: str) -> str:
    """Leaves partial lines (no newline yet) that only the replica's end writes out."""
    print(f"PARTIAL {marker}", end="")
    os.write(1, f"FD-PARTIAL {marker}".encode())
    return os.environ["LEPTON_REPLICA"]
