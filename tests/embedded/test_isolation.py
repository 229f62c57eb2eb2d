"""Sandboxed replicas: a hostile function reaches nothing that is not its own, and the
platform keeps serving everything else (isolation.py, sandbox.py)."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import lepton
from lepton.loader import load_functions
from tests.embedded.conftest import start_platform
from tests.helpers import FUNCTIONS, children_of

ISOLATION = FUNCTIONS / "isolation"
REFUSED = {errno.EACCES, errno.EPERM, errno.EROFS}


def template_pid(platform_pid: int) -> int:
    for pid in children_of(platform_pid):
        if b"lepton_platform.template" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no template process")


def memory_holds(pid: int, needles: list[bytes]) -> list[bytes]:
    """Which of `needles` are anywhere in the process's writable memory (heap, stacks, arenas)."""
    found = set()
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            span, perms = line.split()[:2]
            if not perms.startswith("rw"):
                continue
            start, end = (int(x, 16) for x in span.split("-"))
            try:
                mem.seek(start)
                data = mem.read(end - start)
            except (OSError, OverflowError, ValueError):
                continue
            found.update(n for n in needles if n in data)
    return sorted(found)


def test_a_hostile_function_reaches_nothing_that_is_not_its_own(platform):
    platform.deploy(ISOLATION / "neighbour.py")
    platform.deploy(ISOLATION / "hostile.py")
    home = platform.home
    with platform.http() as http:
        assert http.put("/v1/buckets/own/objects/note.txt", content=b"a private note").status_code == 201
        me = http.post("/fn/hostile").json()
        neighbour = http.get("/v1/functions/neighbour").json()["replica_details"][0]
        assert "sandbox:" not in str(neighbour)
        info = http.get("/v1/functions/hostile").json()
        assert info["sandbox"].startswith("on (Landlock ABI")

        def attempt(action: str, target: object) -> dict:
            response = http.post("/fn/hostile", json={"action": action, "target": str(target)})
            assert response.status_code == 200, response.text
            return response.json()

        # It runs, in its own scratch directory, without the platform's whereabouts.
        assert not me["home"]
        assert str(home) not in me["tmpdir"] and str(home) not in me["cwd"]
        if os.geteuid() == 0:
            assert me["uid"] == 65534
        assert attempt("scratch", "") == {"ok": True}
        assert attempt("read", "hostile.py") == {"ok": True}

        platform_pid = platform.process.proc.pid
        bucket_file = next(p for p in (home / "buckets").rglob("*") if p.is_file() and b"a private note" in p.read_bytes())
        neighbour_src = next((home / "unpacked").glob("*/src/neighbour.py"))
        attempts = [
            ("read", home / "token"),
            ("read", home / "state.db"),
            ("read", bucket_file),
            ("list", home),
            ("list", home / "buckets"),
            ("read", neighbour_src),
            ("read", next((home / "logs" / "neighbour").glob("*.log"))),
            ("write", home / "planted"),
            ("write", "/tmp/lepton-escaped"),
            ("write", Path(me["cwd"]) / "hostile.py"),
            ("signal", platform_pid),
            ("signal", template_pid(platform_pid)),
            ("signal", neighbour["pid"]),
            ("ptrace", platform_pid),
            ("read", f"/proc/{platform_pid}/environ"),
            ("read", f"/proc/{neighbour['pid']}/environ"),
            ("connect", neighbour["socket"]),
        ]
        for action, target in attempts:
            result = attempt(action, target)
            assert result["ok"] is False and result["errno"] in REFUSED, (action, target, result)

        # Everything else still serves.
        assert http.post("/fn/neighbour").json() == "still here"
        assert http.get("/v1/buckets/own/objects/note.txt").content == b"a private note"
    assert not (home / "planted").exists() and not Path("/tmp/lepton-escaped").exists()
    assert platform.process.proc.poll() is None


def test_the_template_process_holds_no_secret_a_replica_could_inherit(platform):
    platform.deploy(ISOLATION / "hostile.py")
    with platform.http() as http:
        scoped = http.post("/fn/hostile").json()["token"]
    assert scoped.startswith("rev.")
    pid = template_pid(platform.process.proc.pid)
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"LEPTON_HOME" not in environ and b"LEPTON_TOKEN" not in environ
    assert memory_holds(pid, [platform.token.encode(), scoped.encode()]) == []


def test_without_landlock_the_platform_says_so_or_refuses(tmp_path):
    base = {"LEPTON_NO_LANDLOCK": "1"}
    auto = start_platform(tmp_path / "auto", tmp_path / "auto.log", env=base, fork=False)
    try:
        assert re.search(r"SANDBOX OFF", auto.output())
        health = httpx.get(f"{auto.url}/healthz").json()
        assert health["sandbox"].startswith("off"), health
    finally:
        auto.stop(signal.SIGTERM)

    required = start_platform(tmp_path / "required", tmp_path / "required.log", env={**base, "LEPTON_SANDBOX": "required"}, fork=False)
    try:
        token = (tmp_path / "required" / "token").read_text().strip()
        path = ISOLATION / "neighbour.py"
        artifact = lepton.package(path, load_functions(str(path)))
        with httpx.Client(base_url=required.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
            assert http.put(f"/v1/artifacts/{artifact.digest}", content=artifact.data).status_code in (200, 201)
            response = http.post("/v1/functions", json={"artifact": artifact.digest, "function": "neighbour"})
        assert response.status_code in (400, 409, 422), response.text
        assert "sandbox: required" in response.json()["detail"]
    finally:
        required.stop(signal.SIGTERM)


@pytest.mark.skipif(os.geteuid() != 0, reason="the replica user is only looked up when the platform runs as root")
def test_an_unknown_replica_user_is_one_line(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lepton.cli", "up", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LEPTON_HOME": str(tmp_path), "LEPTON_SANDBOX_USER": "no-such-user-here"},
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: configuration sandbox_user: unknown user 'no-such-user-here': no such entry in the password database "
        "(from config.yaml or LEPTON_SANDBOX_USER)"
    ]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs another user to connect as")
def test_a_replica_answers_no_other_user_on_its_socket(platform):
    """An abstract socket has no file permissions; the replica itself closes connections that do
    not come from the platform's user."""
    platform.deploy(ISOLATION / "neighbour.py")
    with platform.http() as http:
        name = http.get("/v1/functions/neighbour").json()["replica_details"][0]["socket"]
    assert ask(name, uid=None).startswith(b"HTTP/1.1 200")
    assert ask(name, uid=65534) == b""  # closed unanswered


def ask(name: str, uid: int | None) -> bytes:
    """GET /healthz on a replica's abstract socket from a forked child, as `uid` if given."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if uid is not None:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(10)
                sock.connect("\0" + name[1:])
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    os.write(write_end, sock.recv(100))
                except ConnectionResetError:
                    pass
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as answer:
        data = answer.read()
    os.waitpid(pid, 0)
    return data
