"""Holds replicas to their function's `memory=`.

Where the platform cannot use cgroups (it is not given a delegated cgroup v2 subtree, as on a
shared machine), one task samples every replica's private memory four times a second and
stops a replica that goes over its limit with SIGKILL, as the kernel's OOM killer would in a
cgroup. Private memory (Private_Clean + Private_Dirty + Swap from smaps_rollup) is what the
replica added to what it shares with the template process, which is what a cgroup would
charge it: a forked torch replica shares ~300 MiB of libraries it did not allocate.

Limits: an allocation faster than the sampling interval may overshoot the limit for up to
that long, and memory of processes the function starts itself is not counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger("lepton.platform")
INTERVAL = 0.25
UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
QUANTITY = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]i?)?$")
PRIVATE = re.compile(rb"^(?:Private_Clean|Private_Dirty|Swap):\s+(\d+) kB", re.MULTILINE)
RESIDENT = re.compile(rb"^(?:VmRSS|VmSwap):\s+(\d+) kB", re.MULTILINE)


def memory_bytes(quantity: str) -> int:
    """'512Mi' -> 536870912, as Kubernetes reads a memory quantity."""
    match = QUANTITY.match(quantity)
    if not match:
        raise ValueError(f"{quantity!r} is not a memory quantity")
    return int(float(match[1]) * UNITS[match[2] or ""])


def private_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            return sum(int(kb) for kb in PRIVATE.findall(fh.read())) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def resident_bytes(pid: int) -> int | None:
    """Resident plus swapped memory, shared pages included: an upper bound of
    `private_bytes`, from counters the kernel keeps (smaps_rollup walks the page tables)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            return sum(int(kb) for kb in RESIDENT.findall(fh.read())) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class MemoryWatchdog:
    def __init__(self, replicas: Callable[[], Iterable[Any]], on_kill: Callable[[Any, int], None]) -> None:
        self.replicas = replicas
        self.on_kill = on_kill
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="memory-watchdog")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL)
            try:
                self.check()
            except Exception:
                logger.exception("memory check failed; checking again")

    def check(self) -> None:
        for replica in list(self.replicas()):
            if replica.pid is None or replica.exited.is_set():
                continue
            limit = memory_bytes(replica.revision.spec.memory)
            if (resident_bytes(replica.pid) or 0) <= limit:
                continue  # cannot be over: no need to read smaps_rollup
            used = private_bytes(replica.pid)
            if used is not None and used > limit:
                replica.ended_because = (
                    f"it used {used / 2**20:.0f} MiB, over its memory limit of {replica.revision.spec.memory}, and was stopped"
                )
                logger.warning("replica %s of %s %s", replica.id, replica.revision.function, replica.ended_because)
                try:
                    os.killpg(replica.pid, signal.SIGKILL)  # its session: the replica and what it started
                except (ProcessLookupError, PermissionError):
                    replica.signal(signal.SIGKILL)
                self.on_kill(replica, used)
