"""Confinement of a replica before any user code is imported.

A replica (forked from the template process, or a fresh process via preexec_fn) calls, in
order: `private_view()` (root only: a private mount namespace showing it only the directories
it needs), `drop_privileges()` (root -> the replica user, for good) and `confine()` (Landlock:
filesystem rights per path, no signals to and no abstract-socket connections to processes
outside the sandbox). Everything here is inherited by the replica's children.

Binding: a small ctypes binding, not a PyPI package. What PyPI offered when this was written:
- `landlock` (Edward-Knight, MIT, pure ctypes): only 1.0.0.devN pre-releases (last dev5, 2025-05);
  the source we read stops at ABI 2 (REFER): no TRUNCATE, IOCTL_DEV, network or ABI 6 scopes.
- `py-landlock` (SebastienWae, MIT, pure Python, 0.1.x, 2026-01): covers scopes, but alpha.
- `landlockpy` (Quad4-Software, 0BSD, pure ctypes, no deps): covers ABI 1-11 incl. scopes, but
  0.x and first released 2026-09; too young to call maintained, and it would be a new pinned
  dependency in the platform and in every replica environment.
None is a C extension or clearly maintained with ABI 6 coverage; the three syscalls and two
structs below are ~150 lines we test ourselves (tests/test_sandbox.py) with no new dependency.

Syscall numbers 444-446 come from the unified asm-generic table (Linux >= 5.1): the same on
x86_64, aarch64, arm, riscv, ppc, s390 (only alpha differs, +110; not supported here).

Import stays cheap: only os and sys at import; ctypes is loaded on first use.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: typing alone costs ~4 ms at import
    from collections.abc import Callable, Iterable
    from typing import Any

__all__ = ["SandboxError", "confine", "drop_privileges", "landlock_abi", "private_view", "resolve_user"]

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem access rights (include/uapi/linux/landlock.h).
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
# Rights that a rule on a non-directory may carry (the kernel refuses the others: EINVAL).
_FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
_READ_RIGHTS = FS_READ_FILE | FS_READ_DIR | FS_EXECUTE

SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

# Mount flags and clone flags (include/uapi/linux/mount.h, sched.h).
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT = 1, 2, 4, 32
_MS_BIND, _MS_REC, _MS_PRIVATE = 4096, 16384, 1 << 18
_CLONE_NEWNS = 0x00020000


class SandboxError(OSError):
    """The kernel refused a confinement step; str() names the step and the errno."""

    def __init__(self, err: int, step: str) -> None:
        super().__init__(err, f"{step}: {os.strerror(err)}")
        self.step = step


_ctypes: Any = None
_libc: Any = None
_structs: dict[str, Any] = {}


def _load() -> Any:
    """libc through ctypes, loaded on first use (keeps `import lepton_platform.sandbox` cheap)."""
    global _ctypes, _libc
    if _libc is None:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        for name, argtypes in (
            ("prctl", [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]),
            ("unshare", [ctypes.c_int]),
            ("mount", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]),
        ):
            getattr(libc, name).argtypes = argtypes
            getattr(libc, name).restype = ctypes.c_int

        class RulesetAttr(ctypes.Structure):
            _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

        class PathBeneathAttr(ctypes.Structure):
            _pack_ = 1  # the kernel's struct is __attribute__((packed)): 12 bytes
            _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

        _structs.update(ruleset=RulesetAttr, path_beneath=PathBeneathAttr)
        _ctypes, _libc = ctypes, libc
    return _libc


def _syscall(nr: int, *args: Any) -> int:
    """syscall(2) with every integer passed as a long (the wrapper is variadic); -errno on failure."""
    libc = _load()
    cargs = [_ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    _ctypes.set_errno(0)
    result: int = libc.syscall(_ctypes.c_long(nr), *cargs)
    return result if result >= 0 else -_ctypes.get_errno()


def _check(result: int, step: str) -> int:
    if result < 0:
        raise SandboxError(_ctypes.get_errno() or 1, step)
    return result


def landlock_abi() -> int:
    """0 when Landlock is unavailable (not Linux, old kernel, disabled at boot, syscall blocked by seccomp: ENOSYS/EOPNOTSUPP/EPERM)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        result = _syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    except (OSError, AttributeError):  # no libc `syscall` symbol
        return 0
    return max(result, 0)


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # ABI 1: EXECUTE .. MAKE_SYM
    if abi >= 2:
        rights |= FS_REFER
    if abi >= 3:
        rights |= FS_TRUNCATE
    if abi >= 5:
        rights |= FS_IOCTL_DEV
    return rights


def confine(read: Iterable[str], write: Iterable[str], *, scope: bool = True) -> int:
    """Restrict this process (and all its future children, threads created later) with Landlock:
    handle every filesystem access right the running ABI knows (ABI1 base set, +REFER in 2, +TRUNCATE in 3, +IOCTL_DEV in 5),
    allow under each `read` path: READ_FILE, READ_DIR, EXECUTE (for a path that is a regular file, only the file rights READ_FILE|EXECUTE — Landlock refuses directory rights on a file rule);
    allow under each `write` path: every handled right;
    when `scope` and ABI >= 6: LANDLOCK_SCOPE_SIGNAL and LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET (no signals to, no connections to abstract sockets of, processes outside this domain).
    Do NOT handle network rights (functions need TCP).
    Paths that do not exist are skipped silently. Calls prctl(PR_SET_NO_NEW_PRIVS, 1) first. Returns the ABI used.
    Raises SandboxError when landlock_abi() == 0 or a syscall fails.

    Only the calling thread is restricted (threads that already exist keep their rights), so
    call it where the process is single-threaded, or at least before other threads run user code.
    Landlock refuses ptrace and /proc/<pid>/mem of processes outside the domain, but (kernel
    6.18) not /proc/<pid>/environ or maps: keep secrets from a replica by also running it as
    another uid (drop_privileges).
    """
    abi = landlock_abi()
    if abi <= 0:
        raise SandboxError(_landlock_errno(), "landlock_create_ruleset (Landlock unavailable)")
    libc = _load()
    handled = _handled_fs(abi)
    attr = _structs["ruleset"](
        handled_access_fs=handled, handled_access_net=0, scoped=(SCOPE_SIGNAL | SCOPE_ABSTRACT_UNIX_SOCKET) if scope and abi >= 6 else 0
    )
    # The kernel takes the struct size of the ABI that introduced its last field we use.
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    ruleset = _check(_syscall(_SYS_CREATE_RULESET, _ctypes.byref(attr), size, 0), "landlock_create_ruleset")
    try:
        rules = [(path, _READ_RIGHTS) for path in read] + [(path, handled) for path in write]
        for path, rights in rules:
            _add_path_rule(ruleset, os.fspath(path), rights & handled)
        _check(_syscall(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _landlock_errno() -> int:
    import errno

    if not sys.platform.startswith("linux"):
        return errno.ENOSYS
    result = _syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    return -result if result < 0 else errno.ENOSYS


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return  # documented: a path that does not exist grants nothing
    except OSError as exc:
        raise SandboxError(exc.errno or 1, f"open({path!r}, O_PATH)") from exc
    try:
        import stat

        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _FILE_RIGHTS
        rule = _structs["path_beneath"](allowed_access=rights, parent_fd=fd)
        _check(_syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, _ctypes.byref(rule), 0), f"landlock_add_rule({path!r})")
    finally:
        os.close(fd)


def resolve_user(user: str) -> tuple[int, int]:
    """(uid, gid) of a user name or numeric uid (pwd); ValueError naming the user when unknown."""
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if str(user).isdigit() else pwd.getpwnam(str(user))
    except (KeyError, OverflowError) as exc:
        raise ValueError(f"unknown user {user!r}: no such entry in the password database") from exc
    return entry.pw_uid, entry.pw_gid


def drop_privileges(uid: int, gid: int) -> None:
    """Root -> `uid`/`gid` for good: setgroups([]), setresgid, setresuid; then verify that setuid(0) fails (raise SandboxError if it does not).

    Groups first (only root may change them), the uid last: after it nothing can be changed back.
    """
    import errno

    if uid == 0:
        raise ValueError("drop_privileges: uid 0 drops nothing")
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("setgroups([])", lambda: os.setgroups([])),
        (f"setresgid({gid})", lambda: os.setresgid(gid, gid, gid)),
        (f"setresuid({uid})", lambda: os.setresuid(uid, uid, uid)),
    )
    for step, call in steps:
        try:
            call()
        except OSError as exc:
            raise SandboxError(exc.errno or errno.EPERM, step) from exc
    try:
        os.setuid(0)
    except PermissionError:
        pass
    else:
        raise SandboxError(errno.EPERM, f"setuid(0) still succeeds after dropping to uid {uid}")
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid) or os.getgroups():
        raise SandboxError(errno.EPERM, f"ids after dropping are {os.getresuid()}/{os.getresgid()}/{os.getgroups()}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None, step: str) -> None:
    libc = _load()

    def enc(s: str | None) -> bytes | None:
        return None if s is None else os.fsencode(s)

    _check(libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), step)


def private_view(mounts: dict[str, str], read_only: Iterable[str] = (), root: str = "/tmp") -> dict[str, str]:
    """Root only, in a single-threaded process (a freshly forked child): give this process a private mount namespace in which `root`
    is a fresh small tmpfs (mode 0755) and `root/NAME` is a bind mount of `mounts[NAME]` (a directory), remounted read-only for NAMEs in
    `read_only`. Returns {NAME: new absolute path}. Why: an unprivileged replica user cannot traverse to the platform's state directory
    (e.g. /root/.lepton or a 0700 pytest tmp dir); bind mounts give it exactly the directories it needs at paths it can reach.

    Sources may live under `root`: each is opened with O_PATH after unshare (an fd from the old
    namespace cannot be bind-mounted: EINVAL) and before the tmpfs hides it, then bound from
    /proc/self/fd/N. Propagation is made private before anything is mounted, so nothing leaks
    to the host's namespace. Read-only applies to the top mount of each bind, not to mounts nested
    inside a source. Raises SandboxError on failure (the namespace is then half-built: exit).
    """
    read_only = set(read_only)
    for name in mounts:
        if not name or name in (".", "..") or "/" in name or "\0" in name:
            raise ValueError(f"private_view: {name!r} is not a single path component")
    if unknown := read_only - set(mounts):
        raise ValueError(f"private_view: read_only names {sorted(unknown)} are not in mounts")
    root = os.path.abspath(root)
    libc = _load()
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE, None, "mount(/, MS_REC|MS_PRIVATE)")
    fds: dict[str, int] = {}
    try:
        for name, source in mounts.items():
            try:
                fds[name] = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as exc:
                raise SandboxError(exc.errno or 1, f"open({source!r}, O_PATH|O_DIRECTORY)") from exc
        _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k", f"mount(tmpfs, {root})")
        paths: dict[str, str] = {}
        for name, fd in fds.items():
            target = os.path.join(root, name)
            try:
                os.mkdir(target, 0o755)
            except OSError as exc:
                raise SandboxError(exc.errno or 1, f"mkdir({target!r})") from exc
            _mount(f"/proc/self/fd/{fd}", target, None, _MS_BIND | _MS_REC, None, f"mount({mounts[name]} -> {target}, MS_BIND)")
            if name in read_only:
                _mount(
                    None,
                    target,
                    None,
                    _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                    None,
                    f"mount({target}, MS_REMOUNT|MS_RDONLY)",
                )
            paths[name] = target
        return paths
    finally:
        for fd in fds.values():
            os.close(fd)


def blocked_ancestor(path: str, uid: int, gid: int) -> str | None:
    """The outermost directory above `path` that `uid`/`gid` (with no other groups) may not
    search, or None when it can walk all the way: Python may live under /root, which is 0700."""
    parts = os.path.abspath(path).split("/")[1:-1]
    folder = ""
    for part in parts:
        folder += "/" + part
        try:
            st = os.stat(folder)
        except OSError:
            return None
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            return folder
    return None


def reveal(paths: Iterable[str], uid: int, gid: int) -> None:
    """In a private mount namespace (after private_view), as root: make each of `paths` reachable
    by `uid` at its own path. Over every directory that blocks the way (a 0700 /root holding a
    pyenv Python) goes a tmpfs holding only bind mounts of the paths needed beneath it, so
    nothing else in it (e.g. /root/.lepton) is visible."""
    wanted = sorted(dict.fromkeys(os.path.abspath(p) for p in paths))
    wanted = [p for p in wanted if not any(p.startswith(q + "/") for q in wanted if q != p)]
    groups: dict[str, list[str]] = {}
    for path in wanted:
        blocker = blocked_ancestor(path, uid, gid)
        if blocker is not None and os.path.exists(path):
            groups.setdefault(blocker, []).append(path)
    outer = [b for b in groups if not any(b.startswith(o + "/") for o in groups)]
    merged = {b: [p for g, ps in groups.items() if g == b or g.startswith(b + "/") for p in ps] for b in outer}
    fds: dict[str, int] = {}
    try:
        for path in (p for ps in merged.values() for p in ps):
            try:
                fds[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError as exc:
                raise SandboxError(exc.errno or 1, f"open({path!r}, O_PATH)") from exc
        for blocker, inside in merged.items():
            _mount("tmpfs", blocker, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755,size=64k", f"mount(tmpfs, {blocker})")
            for path in inside:
                os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
                if os.path.isdir(f"/proc/self/fd/{fds[path]}"):
                    os.mkdir(path, 0o755)
                else:
                    open(path, "x").close()
                _mount(f"/proc/self/fd/{fds[path]}", path, None, _MS_BIND | _MS_REC, None, f"mount({path}, MS_BIND)")
                _mount(
                    None,
                    path,
                    None,
                    _MS_BIND | _MS_REMOUNT | _MS_RDONLY | _MS_NOSUID | _MS_NODEV,
                    None,
                    f"mount({path}, MS_REMOUNT|MS_RDONLY)",
                )
    finally:
        for fd in fds.values():
            os.close(fd)
