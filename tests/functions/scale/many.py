"""Six functions whose setup() takes 0.6 s and logs when it starts and ends (to check how many
replicas a deploy starts at once), and two for queueing: one request at a time."""

import os
import time

import lepton


def _mark(what: str) -> None:
    os.write(1, f"SETUP {what} {os.environ['LEPTON_FUNCTION']} {time.time():.6f}\n".encode())


def _slow_start(name: str):
    class Slow:
        def setup(self) -> None:
            _mark("start")
            time.sleep(0.6)
            _mark("end")

        def __call__(self, x: int = 0) -> int:
            return x + 1

    Slow.__name__ = Slow.__qualname__ = name
    return lepton.function(name=name.lower(), scale_down_after=2)(Slow)


S1, S2, S3, S4, S5, S6 = (_slow_start(f"S{n}") for n in range(1, 7))


@lepton.function(concurrency=1, max_scale=1, max_queue=2, scale_down_after=30)
def single(n: int = 0, hold: float = 0.0) -> int:
    """One request at a time; logs the order requests reach it."""
    os.write(1, f"ORDER {n}\n".encode())
    time.sleep(hold)
    return n
