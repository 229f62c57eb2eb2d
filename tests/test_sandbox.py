"""Replica confinement (lepton_platform.sandbox) against the real kernel.

The test process never confines itself: every check runs in a forked child (`in_child`) or a
fresh interpreter, which reports what happened as JSON and exits.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lepton_platform import sandbox
from lepton_platform.sandbox import SandboxError, confine, drop_privileges, landlock_abi, private_view, resolve_user

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
needs_landlock = pytest.mark.skipif(landlock_abi() < 1, reason="Landlock unavailable")
needs_scopes = pytest.mark.skipif(landlock_abi() < 6, reason="Landlock ABI < 6: no scopes")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

NOBODY = (65534, 65534)
PTRACE_SEIZE = 0x4206  # unlike PTRACE_ATTACH it does not stop the tracee, were it ever allowed
TCGETS = 0x5401


def in_child(fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Run fn in a forked child and return its JSON-able result; an exception in the child is
    re-raised here as an OSError (with its errno) or a RuntimeError naming it."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 0
        try:
            os.close(r)
            try:
                result: dict[str, Any] = {"value": fn()}
            except BaseException as exc:
                result = {"error": type(exc).__name__, "errno": getattr(exc, "errno", None), "message": str(exc)}
            data = json.dumps(result, default=str).encode()
            while data:
                data = data[os.write(w, data) :]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"child {pid} did not answer in {timeout} s")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "NoResult", "message": "child died"}')
    if "error" in result:
        if result.get("errno") is not None:
            raise OSError(result["errno"], f"in child: {result['error']}: {result['message']}")
        raise RuntimeError(f"in child: {result['error']}: {result['message']}")
    return result["value"]


def outcome(fn: Callable[[], Any]) -> str:
    """'ok', or the errno name of the OSError fn raised."""
    try:
        fn()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, repr(exc))
    return "ok"


def read(path: Path | str, mode: str = "r") -> Any:
    with open(path, mode) as f:
        return f.read()


def bind_unix(path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(path))


def write(path: Path | str, text: str = "x", mode: str = "w") -> None:
    with open(path, mode) as f:
        f.write(text)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """ro/ (read), rw/ (write), out/ (neither), each with a file `f`."""
    for name in ("ro", "ro/sub", "rw", "rw/a", "rw/b", "out"):
        (tmp_path / name).mkdir()
    for name in ("ro/f", "ro/sub/g", "rw/f", "rw/a/x", "out/f"):
        write(tmp_path / name, name)
    return tmp_path


def test_landlock_available() -> None:
    assert landlock_abi() > 0


def test_resolve_user() -> None:
    assert resolve_user("nobody") == NOBODY
    assert resolve_user("65534") == NOBODY
    assert resolve_user("root") == (0, 0)
    with pytest.raises(ValueError, match="no-such-user-x"):
        resolve_user("no-such-user-x")
    with pytest.raises(ValueError, match="4000000000"):
        resolve_user("4000000000")


@needs_landlock
def test_read_paths_allow_reading_only(tree: Path) -> None:
    def check() -> dict[str, Any]:
        abi = confine([str(tree / "ro")], [])
        return {
            "abi": abi,
            "read": read(tree / "ro/f"),
            "read nested": read(tree / "ro/sub/g"),
            "list": sorted(os.listdir(tree / "ro")),
            "read outside": outcome(lambda: read(tree / "out/f")),
            "list outside": outcome(lambda: os.listdir(tree / "out")),
            "list parent": outcome(lambda: os.listdir(tree)),
            "write": outcome(lambda: write(tree / "ro/f", "y", "a")),
            "create": outcome(lambda: write(tree / "ro/new")),
            "delete": outcome(lambda: os.unlink(tree / "ro/f")),
            "rename": outcome(lambda: os.rename(tree / "ro/f", tree / "ro/f2")),
            "truncate": outcome(lambda: os.truncate(tree / "ro/f", 0)),
            "mkdir": outcome(lambda: os.mkdir(tree / "ro/d")),
            "rmdir": outcome(lambda: os.rmdir(tree / "ro/sub")),
            "symlink": outcome(lambda: os.symlink("f", tree / "ro/l")),
            "fifo": outcome(lambda: os.mkfifo(tree / "ro/p")),
            "write outside": outcome(lambda: write(tree / "out/f", "y", "a")),
            "create outside": outcome(lambda: write(tree / "out/new")),
        }

    result = in_child(check)
    assert result.pop("abi") == landlock_abi()
    assert result == {
        "read": "ro/f",
        "read nested": "ro/sub/g",
        "list": ["f", "sub"],
        "read outside": "EACCES",
        "list outside": "EACCES",
        "list parent": "EACCES",
        "write": "EACCES",
        "create": "EACCES",
        "delete": "EACCES",
        "rename": "EACCES",
        "truncate": "EACCES",
        "mkdir": "EACCES",
        "rmdir": "EACCES",
        "symlink": "EACCES",
        "fifo": "EACCES",
        "write outside": "EACCES",
        "create outside": "EACCES",
    }
    # Nothing leaked out of the child.
    assert sorted(os.listdir(tree / "ro")) == ["f", "sub"] and (tree / "ro/f").read_text() == "ro/f"


@needs_landlock
def test_write_paths_allow_every_right(tree: Path) -> None:
    rw = tree / "rw"

    def check() -> dict[str, str]:
        confine([], [str(rw)])
        return {
            "read": outcome(lambda: read(rw / "f")),
            "append": outcome(lambda: write(rw / "f", "+", "a")),
            "create": outcome(lambda: write(rw / "new", "new")),
            "truncate": outcome(lambda: os.truncate(rw / "new", 1)),
            "mkdir": outcome(lambda: os.mkdir(rw / "d")),
            "symlink": outcome(lambda: os.symlink("new", rw / "d/l")),
            "fifo": outcome(lambda: os.mkfifo(rw / "d/p")),
            "socket": outcome(lambda: bind_unix(rw / "d/s")),
            "rename": outcome(lambda: os.rename(rw / "new", rw / "renamed")),
            "rename across dirs (REFER)": outcome(lambda: os.rename(rw / "a/x", rw / "b/x")),
            "link across dirs (REFER)": outcome(lambda: os.link(rw / "b/x", rw / "a/x2")),
            "delete": outcome(lambda: os.unlink(rw / "renamed")),
            "rmdir": outcome(lambda: [os.unlink(rw / "d" / n) for n in ("l", "p", "s")] and os.rmdir(rw / "d")),
            "read outside": outcome(lambda: read(tree / "out/f")),
            "write outside": outcome(lambda: write(tree / "out/f", "y", "a")),
        }

    assert in_child(check) == {
        "read": "ok",
        "append": "ok",
        "create": "ok",
        "truncate": "ok",
        "mkdir": "ok",
        "symlink": "ok",
        "fifo": "ok",
        "socket": "ok",
        "rename": "ok",
        "rename across dirs (REFER)": "ok",
        "link across dirs (REFER)": "ok",
        "delete": "ok",
        "rmdir": "ok",
        "read outside": "EACCES",
        "write outside": "EACCES",
    }
    assert (rw / "f").read_text() == "rw/f+" and (rw / "b/x").exists() and not (rw / "d").exists()
    assert (tree / "out/f").read_text() == "out/f"


@needs_landlock
def test_file_rules_and_missing_paths(tree: Path) -> None:
    """A regular file may be a rule (file rights only); paths that do not exist are skipped."""

    def check() -> dict[str, str]:
        confine([str(tree / "ro/f"), str(tree / "missing"), str(tree / "ro/f/not-a-dir")], [str(tree / "rw/f"), str(tree / "gone")])
        return {
            "read file rule": outcome(lambda: read(tree / "ro/f")),
            "write file rule": outcome(lambda: write(tree / "ro/f", "y", "a")),
            "sibling": outcome(lambda: read(tree / "ro/sub/g")),
            "list its dir": outcome(lambda: os.listdir(tree / "ro")),
            "write to write file rule": outcome(lambda: write(tree / "rw/f", "+", "a")),
            "create beside write file rule": outcome(lambda: write(tree / "rw/new")),
        }

    assert in_child(check) == {
        "read file rule": "ok",
        "write file rule": "EACCES",
        "sibling": "EACCES",
        "list its dir": "EACCES",
        "write to write file rule": "ok",
        "create beside write file rule": "EACCES",
    }


@needs_landlock
def test_device_ioctls_are_handled() -> None:
    """ABI 5: ioctl on a device opened after confine() needs a write rule; /dev/null answers TCGETS
    with ENOTTY when the ioctl reaches it, and Landlock with EACCES when it does not."""
    if landlock_abi() < 5:
        pytest.skip("Landlock ABI < 5: no IOCTL_DEV")
    import fcntl

    def tcgets(fd: int) -> str:
        return outcome(lambda: fcntl.ioctl(fd, TCGETS, bytes(64)))

    def check(write_dev: bool) -> dict[str, str]:
        before = os.open("/dev/null", os.O_RDONLY)
        confine(["/dev"], ["/dev/null"] if write_dev else [])
        return {"opened before": tcgets(before), "opened after": tcgets(os.open("/dev/null", os.O_RDONLY))}

    assert in_child(lambda: check(False)) == {"opened before": "ENOTTY", "opened after": "EACCES"}
    assert in_child(lambda: check(True)) == {"opened before": "ENOTTY", "opened after": "ENOTTY"}


@needs_landlock
def test_network_is_not_restricted() -> None:
    def check() -> str:
        confine([], [])
        with socket.create_server(("127.0.0.1", 0)) as server, socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            with conn:
                client.sendall(b"ping")
                return conn.recv(4).decode()

    assert in_child(check) == "ping"


@needs_landlock
def test_python_runs_confined_to_its_installation(tmp_path: Path) -> None:
    """A fresh interpreter confined to its own installation still imports modules (READ_DIR,
    READ_FILE) and runs programs (EXECUTE), and still cannot read elsewhere."""
    (tmp_path / "rw").mkdir()
    write(tmp_path / "secret", "secret")
    script = textwrap.dedent("""
        import os, sys
        from lepton_platform.sandbox import confine
        late = ("json", "email", "email.mime.text", "decimal", "sqlite3", "http.client", "asyncio", "subprocess")
        imported_before = [m for m in late if m in sys.modules]
        read = [sys.prefix, sys.base_prefix, *[p for p in sys.path if p and os.path.exists(p)],
                "/usr", "/lib", "/lib64", "/etc", "/proc", "/sys", "/dev"]
        abi = confine(read, [sys.argv[1]])
        import json, email, email.mime.text, decimal, sqlite3, http.client, asyncio, subprocess
        true = subprocess.run(["/bin/true"]).returncode
        try:
            with open(sys.argv[2]) as f:
                f.read()
            secret = "readable"
        except PermissionError:
            secret = "denied"
        with open(os.path.join(sys.argv[1], "out.txt"), "w") as f:
            f.write("written")
        print(json.dumps({"abi": abi, "imported_before": imported_before, "true": true, "secret": secret,
                          "mime": email.mime.text.MIMEText("hi").get_content_type()}))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "rw"), str(tmp_path / "secret")],
        cwd=tmp_path / "rw",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"abi": landlock_abi(), "imported_before": [], "true": 0, "secret": "denied", "mime": "text/plain"}
    assert (tmp_path / "rw/out.txt").read_text() == "written"


def connect_abstract(name: str) -> None:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(name)


def _ptrace_seize(pid: int) -> str:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.restype = ctypes.c_long
    result = libc.ptrace(ctypes.c_long(PTRACE_SEIZE), ctypes.c_long(pid), None, None)
    if result == 0:  # never expected: let go at once (the tracee was not stopped)
        libc.ptrace(ctypes.c_long(17), ctypes.c_long(pid), None, None)  # PTRACE_DETACH
        return "ok"
    return errno.errorcode[ctypes.get_errno()]


@needs_scopes
def test_scope_blocks_signals_abstract_sockets_and_ptrace() -> None:
    name = f"\0lepton-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(name)
        listener.listen(8)

        def check(scope: bool) -> dict[str, str]:
            parent = os.getppid()
            confine(["/proc"], [], scope=scope)
            own = f"\0lepton-test-{uuid.uuid4().hex}"

            def own_socket() -> None:
                with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
                    server.bind(own)
                    server.listen(1)
                    client.connect(own)
                    conn, _ = server.accept()
                    with conn:
                        client.sendall(b"x")
                        assert conn.recv(1) == b"x"

            return {
                "signal parent": outcome(lambda: os.kill(parent, 0)),
                "signal self": outcome(lambda: os.kill(os.getpid(), 0)),
                "connect parent's abstract socket": outcome(lambda: connect_abstract(name)),
                "own abstract socket": outcome(own_socket),
                "ptrace parent": _ptrace_seize(parent),
                "parent's memory": outcome(lambda: open(f"/proc/{parent}/mem", "rb").close()),
            }

        assert in_child(lambda: check(True)) == {
            "signal parent": "EPERM",
            "signal self": "ok",
            "connect parent's abstract socket": "EPERM",
            "own abstract socket": "ok",
            "ptrace parent": "EPERM",
            "parent's memory": "EACCES",
        }
        # Without scopes signals and abstract sockets reach out again (ptrace stays refused:
        # Landlock always forbids tracing a process outside the domain).
        unscoped = in_child(lambda: check(False))
        assert unscoped["signal parent"] == "ok" and unscoped["connect parent's abstract socket"] == "ok"
        assert unscoped["ptrace parent"] == "EPERM"


@needs_scopes
def test_scope_applies_to_children_of_the_confined_process() -> None:
    def check() -> int:
        confine(["/usr", "/lib", "/lib64", "/bin"], [])
        # `kill -0 PPID-of-the-confining-child` from a grandchild: refused, so kill exits non-zero.
        proc = subprocess.run(["/bin/kill", "-0", str(os.getppid())], capture_output=True, text=True)
        return [proc.returncode, proc.stderr]

    code, stderr = in_child(check)
    assert code != 0 and "not permitted" in stderr, stderr


def test_confine_without_landlock_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "landlock_abi", lambda: 0)
    with pytest.raises(SandboxError, match="landlock"):
        confine([], [])


@needs_root
def test_drop_privileges() -> None:
    def check() -> dict[str, Any]:
        os.setgroups([0, 42])  # supplementary groups that must not survive
        drop_privileges(*NOBODY)
        return {
            "ids": [os.getresuid(), os.getresgid(), os.getgroups()],
            "setuid(0)": outcome(lambda: os.setuid(0)),
            "setgid(0)": outcome(lambda: os.setgid(0)),
            "read /etc/shadow": outcome(lambda: read("/etc/shadow")),
        }

    assert in_child(check) == {
        "ids": [[65534] * 3, [65534] * 3, []],
        "setuid(0)": "EPERM",
        "setgid(0)": "EPERM",
        "read /etc/shadow": "EACCES",
    }
    with pytest.raises(ValueError):
        drop_privileges(0, 0)


@needs_root
@needs_landlock
def test_dropped_and_confined_cannot_read_the_platform_environment() -> None:
    """With Landlock alone /proc/<pid>/environ of an outside process stays readable on some kernels
    (it is a PTRACE_MODE_READ check); a different uid closes it."""

    def check() -> str:
        parent = os.getppid()
        drop_privileges(*NOBODY)
        confine(["/proc"], [])
        return outcome(lambda: read(f"/proc/{parent}/environ", "rb"))

    assert in_child(check) == "EACCES"


@needs_root
def test_private_view(tmp_path: Path) -> None:
    ro, rw = tmp_path / "models", tmp_path / "state"
    ro.mkdir()
    rw.mkdir()
    write(ro / "weights", "w")
    ro_name, rw_name = f"ro-{uuid.uuid4().hex[:8]}", f"rw-{uuid.uuid4().hex[:8]}"

    def check() -> dict[str, Any]:
        paths = private_view({ro_name: str(ro), rw_name: str(rw)}, read_only=[ro_name], root="/tmp")
        return {
            "paths": paths,
            "tmp": sorted(os.listdir("/tmp")),
            "tmp mode": oct(os.stat("/tmp").st_mode & 0o7777),
            "read": read(f"/tmp/{ro_name}/weights"),
            "write ro": outcome(lambda: write(f"/tmp/{ro_name}/weights", "y", "a")),
            "create ro": outcome(lambda: write(f"/tmp/{ro_name}/new")),
            "write rw": outcome(lambda: write(f"/tmp/{rw_name}/out", "out")),
            "original visible": os.path.exists(tmp_path),
        }

    result = in_child(check)
    assert result == {
        "paths": {ro_name: f"/tmp/{ro_name}", rw_name: f"/tmp/{rw_name}"},
        "tmp": sorted([ro_name, rw_name]),
        "tmp mode": "0o755",
        "read": "w",
        "write ro": "EROFS",
        "create ro": "EROFS",
        "write rw": "ok",
        "original visible": False,
    }
    # The writable bind wrote through; the view itself stayed private to the child.
    assert (rw / "out").read_text() == "out"
    assert not os.path.exists(f"/tmp/{ro_name}") and tmp_path.exists() and (ro / "weights").read_text() == "w"


@needs_root
def test_private_view_rejects_bad_names(tmp_path: Path) -> None:
    for mounts, read_only in (({"a/b": str(tmp_path)}, ()), ({"..": str(tmp_path)}, ()), ({"a": str(tmp_path)}, ("b",))):
        with pytest.raises(ValueError):
            private_view(mounts, read_only)  # refused before anything is unshared or mounted


@needs_root
def test_private_view_source_missing_raises(tmp_path: Path) -> None:
    def check() -> None:
        private_view({"x": str(tmp_path / "missing")}, root=str(tmp_path))

    with pytest.raises(OSError) as info:
        in_child(check)
    assert info.value.errno == errno.ENOENT and "SandboxError" in str(info.value)


@needs_root
def test_private_view_gives_an_unprivileged_user_what_it_needs(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o700)
    ro = tmp_path / "code"
    ro.mkdir(mode=0o755)
    write(ro / "handler.py", "print('hi')")
    os.chmod(ro / "handler.py", 0o644)

    def unprivileged_direct() -> str:
        drop_privileges(*NOBODY)
        return outcome(lambda: read(ro / "handler.py"))

    def through_view() -> dict[str, Any]:
        paths = private_view({"code": str(ro)}, read_only=["code"], root="/tmp")
        drop_privileges(*NOBODY)
        confine([paths["code"]], [])  # the three steps in the order a replica takes them
        return {
            "read": read(os.path.join(paths["code"], "handler.py")),
            "list": os.listdir(paths["code"]),
            "write": outcome(lambda: write(os.path.join(paths["code"], "handler.py"), "y", "a")),
        }

    assert in_child(unprivileged_direct) == "EACCES"  # why the view is needed
    assert in_child(through_view) == {"read": "print('hi')", "list": ["handler.py"], "write": "EACCES"}
