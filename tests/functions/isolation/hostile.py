"""A function that tries to reach what is not its own; each attempt reports what happened."""

import ctypes
import os
import signal
import socket
import tempfile

import lepton

PTRACE_ATTACH = 16


def attempt(action: str, target: str) -> None:
    if action == "read":
        with open(target, "rb") as fh:
            fh.read(1)
    elif action == "list":
        os.listdir(target)
    elif action == "write":
        with open(target, "w") as fh:
            fh.write("x")
    elif action == "signal":
        os.kill(int(target), signal.SIGTERM)
    elif action == "ptrace":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.ptrace(PTRACE_ATTACH, int(target), None, None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    elif action == "connect":
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect("\0" + target.removeprefix("@"))
    elif action == "scratch":
        with tempfile.NamedTemporaryFile(dir=os.environ["TMPDIR"]) as fh:
            fh.write(b"mine")
    else:
        raise ValueError(action)


@lepton.function(buckets=["own"])
def hostile(action: str = "", target: str = "") -> dict:
    """Runs one attempt; with no action, says who and where it is."""
    if not action:
        return {
            "uid": os.getuid(),
            "cwd": os.getcwd(),
            "tmpdir": os.environ.get("TMPDIR"),
            "home": "LEPTON_HOME" in os.environ,
            "token": os.environ.get("LEPTON_TOKEN"),
        }
    try:
        attempt(action, target)
    except OSError as exc:
        return {"ok": False, "error": type(exc).__name__, "errno": exc.errno}
    return {"ok": True}
