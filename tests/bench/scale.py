"""Scale: how the platform's cost grows with the number of functions and triggers, in one run.

For each size (10, 100 and 1,000 trivial functions, each with one event trigger of its own
type), a fresh `lepton up` gets them from `lepton deploy` (the CLI a user runs), and we print:
- idle CPU of the platform (and its template process) with every function at zero,
  goal under 1% of a core at 1,000;
- the platform's RSS, goal under 200 MiB at 1,000;
- deploy time (goal: linear, 1,000 in under 60 s) and the most replicas alive during it;
- `GET /v1/functions` latency for one page (100 functions) and `lepton ls` for all of them;
- scale-from-zero p50 of one function among them, against a platform with that function alone
  (goal within 1.2x);
- event ingest rate and delivery p50 to one sink with all those triggers, against the sink's
  own trigger alone (goal: rate at least 0.8x, p50 within 1.2x).

    python tests/bench/scale.py [--sizes 10,100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.events import send_at_rate
from tests.bench.load import Platform, run_load

PROBE_RUNS = 9
EVENT_RATE = 200.0


def functions_source(count: int) -> str:
    """`count` trivial functions with one event trigger each, of types no event has."""
    lines = ["import lepton", ""]
    for n in range(count):
        lines += [
            f"@lepton.function(name='fn-{n:04d}', scale_down_after=0.3, triggers=[lepton.on_event(type='bench.other.{n}')])",
            f"def fn_{n:04d}(x: int = 0) -> int:",
            "    return x + 1",
            "",
        ]
    return "\n".join(lines)


PROBES = """import os, time
import lepton

@lepton.function(name="probe", scale_down_after=0.3)
def probe() -> str:
    return "ok"

@lepton.function(name="sink", min_scale=1, max_scale=1, concurrency=64, triggers=[lepton.on_event(type="bench.event")])
def sink(event: lepton.CloudEvent) -> None:
    os.write(1, f"LATENCY {event.get_id()} {time.time() - float(event.get_extension('sentat')):.6f}\\n".encode())
"""


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its descendants that are alive."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        proc_pid, ppid = int(path.parent.name), int(fields[1])
        if proc_pid == pid or ppid == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def deploy(platform: Platform, path: Path) -> tuple[float, int]:
    """Seconds `lepton deploy` took, and the most replicas running during it."""
    peak, done = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        with httpx.Client(base_url=platform.url) as http:
            while not done.is_set():
                peak = max(peak, http.get("/healthz").json()["replicas"]["running"])
                time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "lepton.cli", "deploy", str(path)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "LEPTON_URL": platform.url, "LEPTON_TOKEN": platform.api.token},
    )
    elapsed = time.perf_counter() - started
    done.set()
    watcher.join()
    return elapsed, peak


def cold_p50(platform: Platform, name: str) -> float:
    samples = []
    with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.api.token}"}, timeout=30) as http:
        for _ in range(PROBE_RUNS):
            deadline = time.monotonic() + 30
            while http.get(f"/v1/functions/{name}").json()["replicas"] != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not scale to zero")
                time.sleep(0.05)
            started = time.perf_counter()
            response = http.post(f"/fn/{name}", json={})
            samples.append(time.perf_counter() - started)
            assert response.status_code == 200 and response.headers["x-lepton-cold-start"] == "1", response.text
    return statistics.median(samples) * 1000


def sink_lines(platform: Platform) -> list[str]:
    """`<event id> <seconds>` for each event the sink got (its log, not all thousand)."""
    return [
        line.split(" ", 1)[1]
        for log in sorted((Path(platform.home) / "logs" / "sink").glob("*.log"))
        for line in log.read_text(errors="replace").splitlines()
        if line.startswith("LATENCY ")
    ]


def events(platform: Platform, run: str) -> tuple[float, float]:
    """Accepted events/s (16 clients, one event per request, all for the sink) and delivery p50 in ms."""
    from itertools import count

    ids = count()
    auth = {"Authorization": f"Bearer {platform.api.token}"}

    def one() -> tuple[bytes, dict[str, str]]:
        return b"{}", {
            "ce-specversion": "1.0",
            "ce-id": f"load-{run}-{next(ids)}",
            "ce-source": "/bench",
            "ce-type": "bench.event",
            "ce-sentat": f"{time.time():.6f}",
        }

    rate = run_load(platform.url + "/v1/events", one, clients=16, seconds=3, headers=auth).rps
    loaded = next(ids)
    deadline = time.time() + 60  # let the load's deliveries finish before timing single events
    while time.time() < deadline and sum(line.startswith(f"load-{run}-") for line in sink_lines(platform)) < loaded:
        time.sleep(0.2)
    sent = len(asyncio.run(send_at_rate(platform.url, platform.api.token, EVENT_RATE, 3.0, f"timed-{run}")))

    def timed() -> list[float]:
        return [float(line.split()[1]) for line in sink_lines(platform) if line.startswith(f"timed-{run}")]

    deadline = time.time() + 30
    while time.time() < deadline and len(timed()) < sent:
        time.sleep(0.1)
    return rate, statistics.median(timed()) * 1000


def measure(count: int, folder: Path) -> dict[str, float]:
    """Deploy `count` functions and measure the idle platform; then add the probe and the sink
    (which keeps one replica) for cold starts and events."""
    path = folder / f"fns_{count}.py"
    path.write_text(functions_source(count))
    probes = folder / "probes.py"
    probes.write_text(PROBES)
    platform = Platform()
    try:
        pid = platform.proc.pid
        seconds, peak = deploy(platform, path) if count else (0.0, 0)
        time.sleep(2)  # the deploy's proofs have stopped
        before, started = tree_cpu_seconds(pid), time.perf_counter()
        time.sleep(5)
        idle = (tree_cpu_seconds(pid) - before) / (time.perf_counter() - started) * 100
        rss = rss_mib(pid)
        with httpx.Client(base_url=platform.url, headers={"Authorization": f"Bearer {platform.api.token}"}) as http:
            pages = []
            for _ in range(10):
                started = time.perf_counter()
                http.get("/v1/functions", params={"limit": 100}).raise_for_status()
                pages.append(time.perf_counter() - started)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lepton.cli", "ls"],
            check=True,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "LEPTON_URL": platform.url, "LEPTON_TOKEN": platform.api.token},
        )
        ls = time.perf_counter() - started
        in_file = cold_p50(platform, "fn-0000") if count else 0.0
        deploy(platform, probes)
        cold = cold_p50(platform, "probe")
        return {
            "functions": count,
            "deploy_s": seconds,
            "peak": peak,
            "idle_cpu": idle,
            "rss": rss,
            "page_ms": statistics.median(pages) * 1000,
            "ls_s": ls,
            "cold_ms": cold,
            "in_file_ms": in_file,
        }
    finally:
        platform.close()


def events_against_triggers(count: int, folder: Path, rounds: int = 2) -> list[tuple[int, float, float]]:
    """(triggers, events/s, delivery p50 ms) for the sink's trigger alone and with `count`
    more (added through the API to the probe, on types no event has), alternating in one
    platform so the disk's moods fall on both."""
    probes = folder / "probes.py"
    probes.write_text(PROBES)
    platform = Platform()
    results = []
    try:
        deploy(platform, probes)
        for round_ in range(rounds):
            results.append((1, *events(platform, f"{round_}-1")))
            added = [
                platform.api.request("POST", "/v1/triggers", json={"function": "probe", "attributes": {"type": f"bench.other.{n}"}}).json()[
                    "id"
                ]
                for n in range(count)
            ]
            results.append((count + 1, *events(platform, f"{round_}-{count}")))
            for trigger in added:
                platform.api.request("DELETE", f"/v1/triggers/{trigger}")
    finally:
        platform.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lepton-scale-"))
    base = measure(0, folder)
    rows = [measure(int(size), folder) for size in args.sizes.split(",")]

    print(f"scale benchmark ({os.cpu_count()} cores); each size: that many functions with a trigger each, then a probe and a sink")
    print(
        f"{'functions':>9} {'deploy':>8} {'per fn':>7} {'peak':>5} {'idle CPU':>9} {'RSS':>8} {'page':>8} {'ls':>7} "
        f"{'cold p50':>9} {'ratio':>6} {'in file':>8}"
    )
    for row in [base, *rows]:
        per = row["deploy_s"] / max(1, row["functions"]) * 1000
        print(
            f"{row['functions']:>9} {row['deploy_s']:>7.1f}s {per:>5.0f}ms {row['peak']:>5} {row['idle_cpu']:>8.2f}% "
            f"{row['rss']:>6.0f}Mi {row['page_ms']:>6.1f}ms {row['ls_s']:>6.2f}s {row['cold_ms']:>7.1f}ms "
            f"{row['cold_ms'] / base['cold_ms']:>5.2f}x {row['in_file_ms']:>6.1f}ms"
        )
    print("cold p50: the probe, in a file of its own; in file: fn-0000, in the file of all the others (its replica imports them all)")
    most = max(int(size) for size in args.sizes.split(","))
    runs = events_against_triggers(most, folder)
    one = [r for r in runs if r[0] == 1]
    many = [r for r in runs if r[0] > 1]
    for label, rows in (("1 trigger", one), (f"{most + 1} triggers", many)):
        print(f"events, {label:>14}: " + ", ".join(f"{rate:.0f}/s p50 {p50:.2f} ms" for _, rate, p50 in rows))
    rate_ratio = statistics.mean(r[1] for r in many) / statistics.mean(r[1] for r in one)
    p50_ratio = statistics.mean(r[2] for r in many) / statistics.mean(r[2] for r in one)
    print(
        f"events with {most + 1} triggers against 1 (alternating rounds, one platform): ingest {rate_ratio:.2f}x, "
        f"delivery p50 {p50_ratio:.2f}x"
    )
    print(
        "goals at 1,000: idle CPU < 1% of a core, RSS < 200 MiB, deploy < 60 s and linear, "
        "cold p50 within 1.2x of the 0 row; events/s >= 0.8x and delivery p50 within 1.2x of 1 trigger"
    )


if __name__ == "__main__":
    main()
