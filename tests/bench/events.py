"""Broker benchmark, in one run: durable ingest (single events and batches of 100) beside the
raw SQLite insert rate on the same disk with the same durability (WAL, fsync per commit), and
end-to-end delivery latency (sender to function) at a fixed rate.

Goals: >= 5,000 events/s accepted with batching; delivery p50 <= 5 ms at 500 events/s.

    python tests/bench/events.py [--seconds 3] [--rate 500]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform, run_load
from tests.helpers import log_records

SINK = Path(__file__).resolve().parent / "apps" / "event_sink.py"
BATCH = 100


def sqlite_rate(folder: str, per_commit: int, seconds: float) -> float:
    """Rows/s into a WAL database with synchronous=FULL, `per_commit` rows per transaction."""
    db = sqlite3.connect(Path(folder) / f"raw-{per_commit}.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (seq INTEGER PRIMARY KEY, source TEXT, id TEXT, body BLOB, UNIQUE (source, id))")
    body = b'{"specversion": "1.0", "type": "bench.raw", "source": "/bench", "id": "x"}'
    counter = itertools.count()
    rows = 0
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()
    while time.perf_counter() < deadline:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events (source, id, body) VALUES ('/bench', ?, ?)", ((str(next(counter)), body) for _ in range(per_commit))
        )
        db.execute("COMMIT")
        rows += per_commit
    elapsed = time.perf_counter() - started
    db.close()
    return rows / elapsed


def ingest(platform: Platform, seconds: float, batched: bool, clients: int) -> tuple[float, float]:
    """Accepted events/s and p50 latency of the 202, with unique ids."""
    counter = itertools.count()
    auth = {"Authorization": f"Bearer {platform.api.token}"}

    def single() -> tuple[bytes, dict[str, str]]:
        return b"{}", {"ce-specversion": "1.0", "ce-id": str(next(counter)), "ce-source": "/bench", "ce-type": "bench.ingest"}

    def batch() -> tuple[bytes, dict[str, str]]:
        events = [
            {"specversion": "1.0", "id": str(next(counter)), "source": "/bench", "type": "bench.ingest", "data": {}} for _ in range(BATCH)
        ]
        return json.dumps(events).encode(), {"Content-Type": "application/cloudevents-batch+json"}

    result = run_load(platform.url + "/v1/events", batch if batched else single, clients=clients, seconds=seconds, headers=auth)
    assert result.errors == 0, f"{result.errors} requests failed"
    return result.rps * (BATCH if batched else 1), result.pct(50)


async def send_at_rate(url: str, token: str, rate: float, seconds: float, run: str) -> list[float]:
    """Open-loop: one event every 1/rate s over a pool of keep-alive connections; returns
    each 202's latency in ms."""
    host, port = url.removeprefix("http://").split(":")
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(16):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    sent = 0
    accepted: list[float] = []

    async def one(n: int) -> None:
        reader, writer = await pool.get()
        started = time.perf_counter()
        head = (
            f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 2\r\n"
            f"ce-specversion: 1.0\r\nce-id: {run}-{n}\r\nce-source: /bench\r\nce-type: bench.event\r\n"
            f"ce-sentat: {time.time():.6f}\r\nContent-Type: application/json\r\n\r\n{{}}"
        )
        writer.write(head.encode())
        length = 0
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        accepted.append((time.perf_counter() - started) * 1000)
        pool.put_nowait((reader, writer))

    tasks = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        tasks.append(asyncio.create_task(one(sent)))
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        _, writer = pool.get_nowait()
        writer.close()
    return accepted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rate", type=float, default=500.0, help="events/s for the latency run")
    args = parser.parse_args()

    platform = Platform()
    try:
        platform.deploy(SINK)
        raw_single = sqlite_rate(tempfile.mkdtemp(dir=platform.home), 1, args.seconds)
        raw_batched = sqlite_rate(tempfile.mkdtemp(dir=platform.home), BATCH, args.seconds)
        single, single_p50 = ingest(platform, args.seconds, batched=False, clients=16)
        batched, batched_p50 = ingest(platform, args.seconds, batched=True, clients=8)

        asyncio.run(send_at_rate(platform.url, platform.api.token, 50, 1.0, "warm"))  # warm the path
        time.sleep(1)
        acks = sorted(asyncio.run(send_at_rate(platform.url, platform.api.token, args.rate, args.seconds * 2, "measured")))
        sent = len(acks)

        def measured() -> list[str]:  # the sink logs `LATENCY <id> <seconds>` for each event
            return [line.split()[1] for line in log_records(platform.home, "LATENCY") if line.startswith("measured")]

        deadline = time.time() + 30
        while time.time() < deadline and len(measured()) < sent:
            time.sleep(0.1)
        lat = sorted(float(x) * 1000 for x in measured())
    finally:
        platform.close()

    print(f"events benchmark ({args.seconds:g} s per measurement)")
    print(f"  raw SQLite, WAL + fsync, 1 row/commit        {raw_single:9.0f} rows/s")
    print(f"  raw SQLite, WAL + fsync, {BATCH} rows/commit      {raw_batched:9.0f} rows/s")
    print(
        f"  ingest, 1 event/request, 16 clients          {single:9.0f} events/s  (202 p50 {single_p50:.2f} ms)  "
        f"{single / raw_single:.1f}x raw 1 row/commit   (group commit)"
    )
    print(
        f"  ingest, {BATCH} events/request, 8 clients       {batched:9.0f} events/s  (202 p50 {batched_p50:.2f} ms)  "
        f"{batched / raw_batched:.2f}x raw {BATCH} rows/commit   goal >= 5000 events/s"
    )
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(
        f"  delivery sender -> function at {args.rate:g} events/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"({len(lat)}/{sent} delivered)   goal p50 <= 5 ms"
    )
    print(
        f"    of which ingest (202 received by the sender): p50 {statistics.median(acks):.2f} ms, "
        f"p99 {acks[min(len(acks) - 1, int(0.99 * len(acks)))]:.2f} ms"
    )


if __name__ == "__main__":
    main()
