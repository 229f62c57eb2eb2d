"""Helpers for behaviour tests: real processes on free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "tests" / "functions"


def log_records(home: Path | str, tag: str) -> list[str]:
    """What functions wrote as `TAG payload` lines to their logs, in file order: the one place
    a sandboxed replica writes that a test can read. (Each line's stamp is left out.)"""
    from lepton_platform.logfiles import parse

    prefix = tag + " "
    messages = (
        record.message
        for log in sorted((Path(home) / "logs").rglob("*.log"))
        for record in map(parse, log.read_bytes().splitlines())
        if record is not None
    )
    return [message[len(prefix) :] for message in messages if message.startswith(prefix)]


def wait_for(condition: Callable[[], object], timeout: float = 20, message: str = "") -> object:
    """Poll `condition` until it is true (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s: {message}")


def children_of(parent: int) -> set[int]:
    """The pids of a process's children, from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
        except (OSError, ValueError):
            continue
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    proc: subprocess.Popen
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_process(
    args: list[str], log: Path, url: str, *, env: dict[str, str] | None = None, ready_path: str | None = "/healthz", timeout: float = 30
) -> Process:
    """Start `python args...`, wait until GET url+ready_path answers 200 (or the process dies)."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    process = Process(proc, url, log)
    if ready_path is None:
        return process
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return process
        try:
            if httpx.get(url + ready_path, timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.stop()
    raise AssertionError(f"{args} did not become ready in {timeout}s:\n{process.output()}")
