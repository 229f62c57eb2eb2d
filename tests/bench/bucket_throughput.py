"""Bucket throughput: the embedded object store through the platform API vs plain file I/O on
the same disk, in one run, alternating sides round by round.

Large objects (64 MiB): upload and download MB/s, downloads both from disk (page cache dropped
with posix_fadvise on both sides) and from the page cache. Small objects (4 KiB): PUT and GET per second
over one keep-alive connection. The store flushes each object to disk (fsync) before it is
visible, so the like-for-like baseline writes with fsync too; the no-fsync figure is shown
beside it. Goal: at least 0.5x plain disk for 64 MiB objects.

    python tests/bench/bucket_throughput.py [--rounds 3] [--small 300]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform, median

MB = 1 << 20
BIG = 64 * MB
BLOCK = os.urandom(MB)
SMALL = os.urandom(4096)


def timed(fn: Callable[[], None]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def plain_write(path: Path, chunks: int, *, sync: bool) -> None:
    with path.open("wb") as fh:
        for _ in range(chunks):
            fh.write(BLOCK)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


def plain_read(path: Path) -> None:
    with path.open("rb") as fh:
        while fh.read(MB):
            pass


def plain_small_put(folder: Path, i: int, *, sync: bool) -> None:
    tmp = folder / f".{i}.tmp"
    with tmp.open("wb") as fh:
        fh.write(SMALL)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, folder / f"{i}.bin")


def drop_cache(*paths: Path) -> None:
    """Evict files from the page cache (no root needed), so reads come from the disk."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client: the benchmark measures the platform, not a
    client library (httpx tops out near 650 MB/s here; curl reads the same object at 2.5 GB/s)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb", buffering=MB)
        self.auth = f"Authorization: Bearer {token}\r\nHost: {host}\r\n"
        self.buffer = bytearray(MB)

    def request(self, method: str, path: str, body: bytes | None = None, chunks: int = 0) -> int:
        """Send a request (a body, or `chunks` copies of BLOCK); read and discard the response body."""
        size = len(body) if body is not None else chunks * MB
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\n{self.auth}Content-Length: {size}\r\n\r\n".encode() + (body or b""))
        for _ in range(chunks):
            self.sock.sendall(BLOCK)
        status = int(self.file.readline().split()[1])
        length = 0
        while (line := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        view = memoryview(self.buffer)
        while length:
            length -= self.file.readinto(view[: min(length, MB)])
        if status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {status}")
        return status

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small", type=int, default=300, help="small objects per round")
    args = parser.parse_args()

    platform = Platform("--no-fork")
    disk = Path(tempfile.mkdtemp(prefix="plain-", dir=platform.home))
    sides: dict[str, list[float]] = {}

    def record(label: str, seconds: float) -> None:
        sides.setdefault(label, []).append(seconds)

    objects = Path(platform.home) / "buckets" / "objects"
    http = RawHTTP(platform.url, platform.api.token)
    try:
        http.request("PUT", "/v1/buckets/bench", b"")
        for r in range(args.rounds):
            record("api upload", timed(lambda: http.request("PUT", f"/v1/buckets/bench/objects/big-{r}", chunks=BIG // MB)))
            record("plain write+fsync", timed(lambda: plain_write(disk / f"big-{r}", BIG // MB, sync=True)))
            record("plain write", timed(lambda: plain_write(disk / f"nosync-{r}", BIG // MB, sync=False)))
            drop_cache(*objects.glob("*/*"), disk / f"big-{r}")
            record("api download (disk)", timed(lambda: http.request("GET", f"/v1/buckets/bench/objects/big-{r}")))
            record("plain read (disk)", timed(lambda: plain_read(disk / f"big-{r}")))
            record("api download (cached)", timed(lambda: http.request("GET", f"/v1/buckets/bench/objects/big-{r}")))
            record("plain read (cached)", timed(lambda: plain_read(disk / f"big-{r}")))

            small = disk / f"small-{r}"
            small.mkdir()
            record(
                "api small put",
                timed(lambda: [http.request("PUT", f"/v1/buckets/bench/objects/s{r}/{i}", SMALL) for i in range(args.small)]),
            )
            record("plain small put+fsync", timed(lambda: [plain_small_put(small, i, sync=True) for i in range(args.small)]))
            record("plain small put", timed(lambda: [plain_small_put(small, i, sync=False) for i in range(args.small)]))
            record("api small get", timed(lambda: [http.request("GET", f"/v1/buckets/bench/objects/s{r}/{i}") for i in range(args.small)]))
            record("plain small get", timed(lambda: [(small / f"{i}.bin").read_bytes() for i in range(args.small)]))
    finally:
        http.close()
        platform.close()

    mbps = {k: BIG / MB / median(v) for k, v in sides.items() if not k.startswith(("api small", "plain small"))}
    ops = {k: args.small / median(v) for k, v in sides.items() if k.startswith(("api small", "plain small"))}
    print(f"bucket throughput, embedded store via the API vs plain file I/O, median of {args.rounds} rounds")
    print("64 MiB objects          MB/s")
    for k, v in mbps.items():
        print(f"  {k:<22} {v:8.0f}")
    print(f"4 KiB objects           ops/s ({args.small} sequential per round)")
    for k, v in ops.items():
        print(f"  {k:<22} {v:8.0f}")
    print("ratios (api / plain, like for like)")
    print(
        f"  upload   64 MiB: {mbps['api upload'] / mbps['plain write+fsync']:.2f}x of write+fsync "
        f"({mbps['api upload'] / mbps['plain write']:.2f}x of write without fsync)   goal >= 0.5x"
    )
    print(
        f"  download 64 MiB: {mbps['api download (disk)'] / mbps['plain read (disk)']:.2f}x of a read from disk   goal >= 0.5x"
        f"   ({mbps['api download (cached)'] / mbps['plain read (cached)']:.2f}x of a read from the page cache)"
    )
    print(
        f"  small put: {ops['api small put'] / ops['plain small put+fsync']:.2f}x of put+fsync; "
        f"small get: {ops['api small get'] / ops['plain small get']:.2f}x of read"
    )


if __name__ == "__main__":
    main()
