"""Which cores each replica runs on.

The embedded platform honours a function's `cpu` the way a cluster would: a replica gets
ceil(cpu) cores of its own where the machine has them, the least used first, and its torch
threads follow. A replica's event loop and its handler threads then share one core's caches
instead of bouncing between cores (tests/bench/router_overhead.py: about 1.5x the requests/s
of the same replica left to float), and four replicas of a torch function on a 4-core machine
run 4 threads, not 16. The platform process keeps the last core for as long as others are free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable


def cores_wanted(cpu: str) -> int:
    """'2' -> 2, '500m' -> 1, '1.5' -> 2: whole cores, at least one."""
    amount = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    return max(1, math.ceil(amount))


class CpuPlacement:
    def __init__(self, cores: Iterable[int] | None = None) -> None:
        self.cores = sorted(os.sched_getaffinity(0) if cores is None else cores)
        self.load = dict.fromkeys(self.cores, 0)
        if len(self.cores) > 1:
            self.load[self.cores[-1]] += 1  # the platform's own

    def take(self, cpu: str) -> list[int]:
        """Cores for a new replica of a function asking for `cpu`; give them back when it ends."""
        chosen = sorted(sorted(self.cores, key=self.load.__getitem__)[: min(len(self.cores), cores_wanted(cpu))])
        for core in chosen:
            self.load[core] += 1
        return chosen

    def give_back(self, cores: Iterable[int]) -> None:
        for core in cores:
            self.load[core] -= 1
