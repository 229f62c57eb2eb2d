"""A small closed-loop HTTP/1.1 load generator on raw asyncio streams.

Each client keeps one keep-alive connection and sends the next request as soon as the last
answer is read, so the numbers measure the server, not a client library.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

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


async def _client(host: str, port: int, request: bytes, deadline: float, out: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            chunked = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
                elif name.lower() == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readline()).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            else:
                await reader.readexactly(length)
            if not status_line.startswith(b"HTTP/1.1 2"):
                errors.append(1)
            out.append(time.perf_counter() - started)
    finally:
        writer.close()


def run_load(url: str, body: bytes, *, clients: int = 8, seconds: float = 3.0, headers: dict[str, str] | None = None) -> Result:
    """Closed-loop load on POST url for `seconds` with `clients` keep-alive connections."""
    parsed = httpx.URL(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (
        f"POST {parsed.raw_path.decode() or '/'} HTTP/1.1\r\nHost: {parsed.host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body

    async def main() -> Result:
        latencies: list[float] = []
        errors: list[int] = []
        deadline = time.perf_counter() + seconds
        started = time.perf_counter()
        await asyncio.gather(*(_client(parsed.host, parsed.port, request, deadline, latencies, errors) for _ in range(clients)))
        return Result(latencies, time.perf_counter() - started, len(errors))

    return asyncio.run(main())


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


def median(values: list[float]) -> float:
    return statistics.median(values)
