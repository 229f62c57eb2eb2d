"""Runtime overhead: a trivial JSON handler served by Lepton's runtime vs a bare FastAPI app.

Both run under uvicorn with uvloop and httptools in their own process; rounds alternate so
machine noise hits both sides alike. Prints warm p50/p99 and req/s at 8 keep-alive clients,
and cold start (process start to first 200), each as a ratio Lepton / bare.

    python tests/bench/runtime_overhead.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Result, free_port, load_parser, median, python, run_load, wait_ready

APPS = Path(__file__).resolve().parent / "apps"
BODY = b'{"a": 40, "b": 2}'


def start(kind: str, port: int):
    if kind == "lepton":
        return python("-m", "lepton.runtime", str(APPS / "lepton_add.py"), "--port", str(port), "--log-level", "warning")
    return python(
        "-m",
        "uvicorn",
        "bare_fastapi:app",
        "--app-dir",
        str(APPS),
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    )


def cold_start(kind: str) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = start(kind, port)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        import httpx

        assert httpx.post(f"http://127.0.0.1:{port}/", content=BODY, headers={"content-type": "application/json"}).json() == 42
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()


def main() -> None:
    args = load_parser(__doc__).parse_args()

    servers = {}
    for kind in ("bare", "lepton"):
        port = free_port()
        servers[kind] = (start(kind, port), f"http://127.0.0.1:{port}")
        wait_ready(servers[kind][1] + "/healthz", servers[kind][0])
    results: dict[str, list[Result]] = {"bare": [], "lepton": []}
    try:
        for kind in servers:  # warm-up
            run_load(servers[kind][1] + "/", BODY, clients=args.clients, seconds=0.5)
        for _ in range(args.rounds):
            for kind in ("bare", "lepton"):
                results[kind].append(run_load(servers[kind][1] + "/", BODY, clients=args.clients, seconds=args.seconds))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()

    merged = {
        k: Result([x for r in v for x in r.latencies], sum(r.seconds for r in v), sum(r.errors for r in v)) for k, v in results.items()
    }
    print(f"warm, {args.clients} keep-alive clients, {args.rounds} x {args.seconds:g}s alternating rounds (cpus: {os.cpu_count()})")
    for kind in ("bare", "lepton"):
        print(merged[kind].line(f"  {kind}"))
    bare, lep = merged["bare"], merged["lepton"]
    print(
        f"  ratio lepton/bare: p50 {lep.pct(50) / bare.pct(50):.3f}x  p99 {lep.pct(99) / bare.pct(99):.3f}x  "
        f"req/s {lep.rps / bare.rps:.3f}x   (goal: within 10%)"
    )

    colds = {kind: [] for kind in ("bare", "lepton")}
    for _ in range(5):
        for kind in colds:
            colds[kind].append(cold_start(kind))
    bare_cold, lep_cold = median(colds["bare"]), median(colds["lepton"])
    print(
        f"cold start (process start to first 200, median of 5): bare {bare_cold * 1000:.0f} ms, "
        f"lepton {lep_cold * 1000:.0f} ms, ratio {lep_cold / bare_cold:.3f}x   (goal: <= 1.2x)"
    )


if __name__ == "__main__":
    main()
