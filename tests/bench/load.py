"""A small closed-loop HTTP/1.1 load generator on uvloop and httptools.

Each client keeps one keep-alive connection and sends the next request as soon as the last
answer is read, so the numbers measure the server, not a client library.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httptools
import httpx
import uvloop

from lepton_platform.upstream import open_unix, socket_address

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    latencies: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] * 1000

    def line(self, label: str) -> str:
        return f"{label:<28} p50 {self.pct(50):7.3f} ms  p99 {self.pct(99):7.3f} ms  {self.rps:9.0f} req/s  errors {self.errors}"


class _Client(asyncio.Protocol):
    """One closed-loop client: the next request goes out from the callback that parsed the
    last answer's end (httptools, in C), so the client spends little of the CPU it shares
    with the servers it measures."""

    def __init__(self, request: Callable[[], bytes], deadline: float, out: list[float], errors: list[int]) -> None:
        self.request, self.deadline, self.out, self.errors = request, deadline, out, errors
        self.parser = httptools.HttpResponseParser(self)
        self.closed = asyncio.get_running_loop().create_future()
        self.waiting = False  # for an answer: a connection lost meanwhile is an error

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        if time.perf_counter() >= self.deadline:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.waiting = True
        self.transport.write(self.request())

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.waiting = False
        if self.parser.get_status_code() // 100 != 2:
            self.errors.append(1)
        self.out.append(time.perf_counter() - self.started)
        self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:
            self.errors.append(1)
        if not self.closed.done():
            self.closed.set_result(None)


async def keep_alive_client(
    host: str, port: int | None, uds: str | None, request: Callable[[], bytes], deadline: float, out: list[float], errors: list[int]
) -> None:
    loop = asyncio.get_running_loop()
    if uds:
        _, client = await open_unix(lambda: _Client(request, deadline, out, errors), socket_address(uds))
    else:
        _, client = await loop.create_connection(lambda: _Client(request, deadline, out, errors), host, port)
    await client.closed


def run_load(
    url: str,
    body: bytes | Callable[[], tuple[bytes, dict[str, str]]],
    *,
    clients: int = 8,
    seconds: float = 3.0,
    headers: dict[str, str] | None = None,
    uds: str | None = None,
) -> Result:
    """Closed-loop load on POST url (over `uds` when given) for `seconds` with `clients`
    keep-alive connections. `body` may be a function giving each request's body and extra
    headers (unique event ids, say)."""
    parsed = httpx.URL(url)

    def build(payload: bytes, more: dict[str, str]) -> bytes:
        extra = "".join(f"{k}: {v}\r\n" for k, v in {"Content-Type": "application/json", **(headers or {}), **more}.items())
        return (
            f"POST {parsed.raw_path.decode() or '/'} HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
        ).encode() + payload

    if callable(body):

        def request() -> bytes:
            return build(*body())
    else:
        fixed = build(body, {})

        def request() -> bytes:
            return fixed

    async def main() -> Result:
        latencies: list[float] = []
        errors: list[int] = []
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(
            *(keep_alive_client(parsed.host, parsed.port, uds, request, deadline, latencies, errors) for _ in range(clients))
        )
        return Result(latencies, time.perf_counter() - started, len(errors))

    return uvloop.run(main())


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 60) -> float:
    """Seconds until GET url answers 200."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.002)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def python(*args: str, **kwargs: object) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)


def load_parser(doc: str | None):
    """The options every closed-loop benchmark takes."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per side")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive connections")
    return parser


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Platform:
    """A real `lepton up` in a temporary LEPTON_HOME, for benchmarks."""

    def __init__(self, *extra: str, env: dict[str, str] | None = None) -> None:
        import os
        import tempfile

        self.home = tempfile.mkdtemp(prefix="lepton-bench-")
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lepton.cli", "up", "--port", self.url.rsplit(":", 1)[1], "--log-level", "warning", *extra],
            cwd=ROOT,
            env={**os.environ, **(env or {}), "LEPTON_HOME": self.home},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_ready(self.url + "/healthz", self.proc)
        while not httpx.get(self.url + "/healthz").json()["template_process"] and "--no-fork" not in extra:
            time.sleep(0.1)
        from lepton.client import Client

        with open(os.path.join(self.home, "token")) as token:
            self.api = Client(self.url, token.read().strip())

    def deploy(self, path: Path) -> None:
        from lepton.artifacts import package

        artifact = package(path)
        self.api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
        for fn in artifact.functions:
            self.api.request("POST", "/v1/functions", json={"artifact": artifact.digest, "function": fn["name"]})

    def info(self, name: str) -> dict:
        return self.api.request("GET", f"/v1/functions/{name}").json()

    def close(self) -> None:
        import shutil

        self.api.close()
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.home, ignore_errors=True)
