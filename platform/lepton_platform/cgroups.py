"""memory= through cgroup v2, where the platform has been given a cgroup subtree of its own.

Under systemd with `Delegate=yes` (or any manager that hands a service its cgroup), the
platform's cgroup directory is writable by it. The kernel then holds each replica to its
limit exactly: `memory.max`, with the OOM killer inside the replica's own cgroup and the
kill counted in `memory.events`. Everywhere else the watchdog does the job (watchdog.py).

cgroup v2 lets a cgroup hand controllers to its children only while it holds no processes
itself, so the platform first moves its own processes into a `platform` leaf, then turns
on the memory controller for the children, and puts each replica in a leaf of its own.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

logger = logging.getLogger("lepton.platform")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def delegated(root: Path = CGROUP_ROOT, membership: Path = Path("/proc/self/cgroup"), *, marked: bool = True) -> Path | None:
    """This process's cgroup v2 directory when it was delegated to it, else None.

    Delegation is what systemd marks with the `trusted.delegate` (or `user.delegate`) extended
    attribute: being able to write there is not enough, as root can write to any cgroup, and
    a cgroup that was not handed over belongs to someone else. `marked=False` takes the
    operator's word for it (`memory_limits: cgroup`)."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    unified = [line.split("::", 1)[1] for line in lines if line.startswith("0::")]
    if not unified:
        return None  # cgroup v1 only
    folder = root / unified[0].lstrip("/")
    try:
        controllers = (folder / "cgroup.controllers").read_text().split()
    except OSError:
        return None
    files = (folder, folder / "cgroup.subtree_control", folder / "cgroup.procs")
    if "memory" not in controllers or not all(os.access(f, os.W_OK) for f in files):
        return None
    if marked and not marked_delegated(folder):
        return None
    return folder


def marked_delegated(folder: Path) -> bool:
    for attribute in ("trusted.delegate", "user.delegate"):
        try:
            if os.getxattr(folder, attribute).strip() == b"1":
                return True
        except OSError:
            continue
    return False


class CgroupLimits:
    def __init__(self, base: Path) -> None:
        self.base = base
        leaf = base / "platform"
        leaf.mkdir(exist_ok=True)
        for pid in (base / "cgroup.procs").read_text().split():
            try:
                (leaf / "cgroup.procs").write_text(pid)
            except ProcessLookupError:
                continue  # it ended meanwhile
        (base / "cgroup.subtree_control").write_text("+memory")
        for left in base.glob("replica-*"):  # from an earlier run whose replicas were not reaped in time
            self.remove(left)

    def prepare(self, replica: str, limit: int) -> Path:
        """The replica's cgroup, with its limit; the replica moves itself in (`join`) before it
        allocates anything of its own."""
        folder = self.base / f"replica-{replica}"
        folder.mkdir()
        (folder / "memory.max").write_text(str(limit))
        if (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")  # over the limit means killed, not swapped
        return folder

    @staticmethod
    def oom_kills(folder: Path) -> int:
        try:
            for line in (folder / "memory.events").read_text().splitlines():
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
        except OSError:
            pass
        return 0

    @staticmethod
    def remove(folder: Path) -> None:
        try:
            folder.rmdir()
        except OSError as exc:  # a process of it not reaped yet: the platform's next start sweeps it
            logger.debug("cgroup %s not removed: %s", folder, exc)


def join(folder: str) -> None:
    """In the replica, before anything else: move this process into its cgroup."""
    with open(os.path.join(folder, "cgroup.procs"), "w") as fh:
        fh.write("0")
