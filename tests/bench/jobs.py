"""Async jobs benchmark, in one run:
- jobs accepted durably (`Prefer: respond-async`, one per request, 16 clients) beside the
  broker's single-event ingest (`POST /v1/events`, 16 clients), in alternating rounds. The
  events are only stored (no trigger matches them), so the jobs are too: they queue behind a
  long job of a function that takes one at a time. A second figure has the jobs run as they
  arrive, on a function with room for 64 at once;
- enqueue to handler start at a steady rate: from the job's commit (its `created_at`) to the
  moment its handler begins (logged by the handler);
- `fn.map` over N trivial inputs against the same N direct calls at the same concurrency.

Goals: accept >= 0.8x the event ingest rate; enqueue -> start p50 <= 5 ms at 100 jobs/s;
map >= 0.8x the direct calls' throughput.

    python tests/bench/jobs.py [--seconds 3] [--rounds 2] [--rate 100] [--inputs 10000] [--concurrency 16]
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import lepton
from lepton.loader import load_functions
from tests.bench.load import Platform, load_parser, median, run_load
from tests.helpers import log_records

APP = Path(__file__).resolve().parent / "apps" / "job_sink.py"


def accept_rates(platform: Platform, seconds: float) -> tuple[float, float, float]:
    """(jobs/s stored, jobs/s stored and run, events/s stored) with 16 clients each."""
    auth = {"Authorization": f"Bearer {platform.api.token}"}
    platform.api.request("POST", "/fn/job-hold", json={"seconds": seconds + 1}, headers={"Prefer": "respond-async"})
    stored = run_load(platform.url + "/fn/job-hold", b"{}", clients=16, seconds=seconds, headers={**auth, "Prefer": "respond-async"})
    drain(platform)
    running = run_load(platform.url + "/fn/job-sink", b"{}", clients=16, seconds=seconds, headers={**auth, "Prefer": "respond-async"})
    drain(platform)
    counter = itertools.count()

    def event() -> tuple[bytes, dict[str, str]]:
        return b"{}", {"ce-specversion": "1.0", "ce-id": f"bench-{next(counter)}", "ce-source": "/bench", "ce-type": "bench.ingest"}

    events = run_load(platform.url + "/v1/events", event, clients=16, seconds=seconds, headers=auth)
    assert stored.errors == running.errors == events.errors == 0, (stored.errors, running.errors, events.errors)
    return stored.rps, running.rps, events.rps


def drain(platform: Platform, timeout: float = 120) -> None:
    """Wait until no job is queued or running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        busy = [s for s in ("queued", "running") if platform.api.request("GET", "/v1/jobs", params={"state": s, "limit": 1}).json()["jobs"]]
        if not busy:
            return
        time.sleep(0.2)
    raise RuntimeError("jobs still pending")


async def submit_at_rate(platform: Platform, rate: float, seconds: float) -> list[str]:
    """Open loop: one job every 1/rate s over a pool of keep-alive connections; their ids."""
    host, port = platform.url.removeprefix("http://").split(":")
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(16):
        pool.put_nowait(await asyncio.open_connection(host, int(port)))
    ids: list[str] = []
    head = (
        f"POST /fn/job-sink HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {platform.api.token}\r\n"
        "Prefer: respond-async\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()

    async def one() -> None:
        reader, writer = await pool.get()
        writer.write(head)
        length = 0
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"location:"):
                ids.append(line.split(b"/")[-1].strip().decode())
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        pool.put_nowait((reader, writer))

    tasks, sent, started = [], 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        tasks.append(asyncio.create_task(one()))
        sent += 1
        await asyncio.sleep(max(0.0, started + sent / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    return ids


def start_latencies(platform: Platform, ids: list[str]) -> list[float]:
    """ms from each job's commit to its handler's start."""
    created = {}
    for job in ids:
        created[job] = platform.api.request("GET", f"/v1/jobs/{job}", params={"wait": 30}).json()["created_at"]
    started = {line.split()[0]: float(line.split()[1]) for line in log_records(platform.home, "STARTED")}
    return sorted((started[j] - created[j]) * 1000 for j in ids)


def map_against_direct(platform: Platform, inputs: int, concurrency: int) -> tuple[float, float]:
    """(map calls/s, direct calls/s) over `inputs` calls of `add` at `concurrency`."""
    add = load_functions(str(APP))["add"]
    client = lepton.Client(platform.url, platform.api.token)

    started = time.perf_counter()
    results = list(add.map(range(inputs), concurrency=concurrency, client=client))
    mapped = inputs / (time.perf_counter() - started)
    assert results == [n + 1 for n in range(inputs)]

    work = iter(range(inputs))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                n = next(work, None)
            if n is None:
                return
            assert client.invoke("add", {"a": n}) == n + 1

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    direct = inputs / (time.perf_counter() - started)
    client.close()
    return mapped, direct


def main() -> None:
    parser = load_parser(__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="jobs/s for the enqueue -> start run")
    parser.add_argument("--inputs", type=int, default=10_000, help="inputs for fn.map and the direct calls")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.set_defaults(rounds=2)
    args = parser.parse_args()

    platform = Platform()
    try:
        platform.deploy(APP)
        accepted, ran, ingested = [], [], []
        for _ in range(args.rounds):
            jobs, running, events = accept_rates(platform, args.seconds)
            accepted.append(jobs)
            ran.append(running)
            ingested.append(events)
        asyncio.run(submit_at_rate(platform, 20, 1.0))  # warm the path
        drain(platform)
        ids = asyncio.run(submit_at_rate(platform, args.rate, args.seconds))
        lat = start_latencies(platform, ids)
        map_against_direct(platform, min(1000, args.inputs), args.concurrency)  # warm
        mapped, direct = map_against_direct(platform, args.inputs, args.concurrency)
    finally:
        platform.close()

    print(f"jobs benchmark ({args.rounds} x {args.seconds:g} s rounds)")
    print(f"  events accepted, 1 per request, 16 clients    {median(ingested):8.0f} /s")
    print(
        f"  jobs accepted, 1 per request, 16 clients      {median(accepted):8.0f} /s   "
        f"{median(accepted) / median(ingested):.2f}x the events   goal >= 0.8x"
    )
    print(
        f"  jobs accepted while they run as they come     {median(ran):8.0f} /s   "
        f"{median(ran) / median(ingested):.2f}x the events (the platform also runs each one)"
    )
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    print(
        f"  enqueue -> handler start at {args.rate:g} jobs/s: p50 {statistics.median(lat):.2f} ms, p99 {p99:.2f} ms "
        f"({len(lat)} jobs)   goal p50 <= 5 ms"
    )
    print(
        f"  {args.inputs} calls at concurrency {args.concurrency}: direct {direct:7.0f} calls/s, fn.map {mapped:7.0f} calls/s   "
        f"{mapped / direct:.2f}x   goal >= 0.8x"
    )


if __name__ == "__main__":
    main()
