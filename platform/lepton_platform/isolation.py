"""What a replica may reach: decided by the platform, applied by the replica itself after it
is forked and before any of the function's code is imported.

A sandboxed replica reads the Python installation and the system's libraries, its revision's
source and installed packages, and reads and writes only its scratch directory (its TMPDIR
and HOME, removed when it exits). It cannot open anything else under $LEPTON_HOME (state,
token, buckets, other functions' artifacts, logs), cannot signal or ptrace processes outside
its own Landlock domain (the platform, the template process, other replicas), and cannot
connect to their abstract Unix sockets, which is where replicas listen (sandbox.py).

When the platform runs as root, each replica also becomes `sandbox_user` (nobody by default).
That user usually cannot walk to $LEPTON_HOME (under /root, or a 0700 temporary directory),
so the replica first gives itself a private mount namespace in which the three directories it
needs are bind-mounted under VIEW_ROOT. Run as a normal user, the replica sees the same
directories at their real paths.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from lepton_platform import sandbox

logger = logging.getLogger("lepton.platform")

# Where the private view is mounted for a root platform: a directory that exists everywhere
# and holds nothing a replica needs (a tmpfs over /tmp could hide the Python installation).
VIEW_ROOTS = ("/mnt", "/media", "/srv")
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys", "/dev", "/opt")
# Of /proc, a replica reads its own process and the machine-wide files libraries look at, not
# other processes: Landlock alone would let it read their /proc/PID/environ.
# What CUDA opens read-write, besides /dev/nvidiaN of the replica's own GPUs (no others).
GPU_DEVICES = ("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia-modeset")
PROC_READ = (
    "/proc/self",
    "/proc/cpuinfo",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/loadavg",
    "/proc/sys",
    "/proc/filesystems",
    "/proc/version",
    "/proc/uptime",
)
SCOPED_ABI = 6  # signals and abstract Unix sockets scoped to the replica's own domain
# Pretend the kernel has no Landlock: how the tests check `sandbox: required` and the warning.
NO_LANDLOCK_ENV = "LEPTON_NO_LANDLOCK"


class SandboxUnavailable(RuntimeError):
    """`sandbox: required` and this kernel cannot confine replicas."""


@dataclass(frozen=True)
class Isolation:
    """The platform's side: the mode in force and the plan each replica applies."""

    mode: str  # the configured mode: auto, required or off
    abi: int  # the Landlock ABI in force, 0 when replicas are not confined
    user: tuple[int, int] | None  # (uid, gid) replicas switch to, None when not root
    user_name: str
    read: tuple[str, ...]  # system and Python paths every replica may read
    protected: tuple[str, ...]  # paths no replica may read (the platform's own state)

    @classmethod
    def configure(cls, mode: str, user: str, protected: list[Path]) -> Isolation:
        from lepton_platform.config import ConfigError  # here: replicas import this module, and config is slow to import

        abi = 0 if mode == "off" or os.environ.get(NO_LANDLOCK_ENV) else sandbox.landlock_abi()
        try:
            ids = sandbox.resolve_user(user) if os.geteuid() == 0 and mode != "off" else None
        except ValueError as exc:
            raise ConfigError(f"configuration sandbox_user: {exc} (from config.yaml or LEPTON_SANDBOX_USER)") from None
        if ids is not None and ids[0] == 0:
            raise ConfigError("configuration sandbox_user: replicas must not run as root; name an unprivileged user")
        guarded = tuple(str(p.resolve()) for p in protected)
        return cls(mode, abi, ids, user, tuple(python_paths(guarded)), guarded)

    @property
    def confined(self) -> bool:
        return self.abi > 0

    def problem(self) -> str | None:
        """Why replicas may not start, or None."""
        if self.mode == "required" and self.abi < SCOPED_ABI:
            found = f"only Landlock ABI {self.abi}, without signal and socket scoping" if self.abi else "no Landlock"
            return (
                f"`sandbox: required` in config.yaml, but this kernel offers {found} (Linux 6.12+ with "
                "landlock in the `lsm=` boot list has ABI 6); replicas are not started"
            )
        return None

    def describe(self) -> str:
        """One line for `lepton info` and the platform's health."""
        if not self.confined:
            return "off" + (" (sandbox: off in config.yaml)" if self.mode == "off" else " (no Landlock in this kernel)")
        partial = "" if self.abi >= SCOPED_ABI else ", partial: replicas may signal and connect to processes of the same user"
        return f"on (Landlock ABI {self.abi}{partial}" + (f", user {self.user_name})" if self.user else ")")

    def plan(self, app: Path, packages: Path | None, scratch: Path, gpus: list[int]) -> dict[str, Any]:
        """What one replica applies (JSON, it travels to the template process)."""
        scratch.mkdir(mode=0o700)
        devices = [*GPU_DEVICES, *(f"/dev/nvidia{i}" for i in gpus)] if gpus else []
        plan = {
            "app": str(app),
            "packages": str(packages) if packages else None,
            "scratch": str(scratch),
            "landlock": self.confined,
            "read": list(self.read),
            "user": list(self.user) if self.user else None,
            "devices": devices,
        }
        if self.user:
            os.chown(scratch, *self.user)
            plan["root"] = view_root(self.read)
        return plan


def python_paths(protected: tuple[str, ...]) -> list[str]:
    """The interpreter, its libraries and the system's, minus any folder holding the
    platform's state: `lepton up` started from ~ has ~ on sys.path, and ~/.lepton under it."""
    # Not the working directory that `python -m` puts on sys.path: `lepton up` started in ~
    # would open ~/.ssh to every function.
    # Lepton's own packages are added by where they are: an editable install finds them
    # through an import hook, not a sys.path entry.
    cwd = os.getcwd()
    candidates = [
        *SYSTEM_READ,
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        os.path.dirname(sys.executable),
        *(p for p in sys.path if p and os.path.realpath(p) != os.path.realpath(cwd)),
        *package_folders(),
    ]
    found = []
    for path in dict.fromkeys(os.path.realpath(p) for p in candidates):
        if not os.path.exists(path) or any(_within(guarded, path) for guarded in protected):
            continue
        found.append(path)
    return found


def package_folders(names: tuple[str, ...] = ("lepton", "lepton_platform", "lepton_knative")) -> list[str]:
    found = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            found.extend(spec.submodule_search_locations)
    return found


def _within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def view_root(read: tuple[str, ...]) -> str:
    for root in VIEW_ROOTS:
        if os.path.isdir(root) and not any(_within(path, root) for path in read):
            return root
    raise SandboxUnavailable(f"no directory among {', '.join(VIEW_ROOTS)} can hold a replica's private view")


class Seen(TypedDict):
    """Where the replica sees its directories once it has entered (`paths`)."""

    app: str
    packages: str | None
    scratch: str


def paths(plan: dict[str, Any]) -> Seen:
    """Where the replica sees its app, packages and scratch directories once it has entered."""
    if not plan.get("root"):
        return {"app": plan["app"], "packages": plan["packages"], "scratch": plan["scratch"]}
    root = plan["root"]
    return {"app": f"{root}/app", "packages": f"{root}/packages" if plan["packages"] else None, "scratch": f"{root}/scratch"}


def enter(plan: dict[str, Any]) -> Seen:
    """In the replica, while it is single-threaded and before user code: mount the private view
    (root), confine with Landlock (while root may still open every path to make its rules), then
    become the unprivileged user. Returns `paths(plan)`. Raises on any failure: a replica that
    cannot confine itself must not run."""
    seen = paths(plan)
    if plan.get("root"):
        mounts = {"app": plan["app"], "scratch": plan["scratch"]}
        if plan["packages"]:
            mounts["packages"] = plan["packages"]
        sandbox.private_view(mounts, read_only=[n for n in ("app", "packages") if n in mounts], root=plan["root"])
        sandbox.reveal(plan["read"], *plan["user"])
    if plan["landlock"]:
        readable = [*plan["read"], *PROC_READ, seen["app"]] + ([seen["packages"]] if seen["packages"] else [])
        sandbox.confine(readable, [seen["scratch"], "/dev/null", *plan.get("devices", [])])
    if plan.get("user"):
        sandbox.drop_privileges(*plan["user"])
    return seen


def environment(seen: Seen) -> dict[str, str]:
    """TMPDIR and HOME point at the scratch directory: libraries that cache under ~ (torch,
    Hugging Face) keep working, and nothing lands outside it."""
    env = {"TMPDIR": seen["scratch"], "HOME": seen["scratch"]}
    if seen["packages"]:
        env["LEPTON_PACKAGES"] = seen["packages"]
    return env
