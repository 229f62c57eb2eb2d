"""Cold start: scale-from-zero to first 200 through the platform (replica forked from the
template process) vs starting a fresh process that does the same work, in one run; and the
same scale-from-zero with the sandbox on (isolation.py) and off, interleaved.

The function imports torch and builds a small model in setup(). Goals: platform p50 under
25 ms with the sandbox on, within +3 ms of the sandbox off, at least 30x faster than the
fresh process.

    python tests/bench/cold_start.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform, free_port, python, wait_ready

APP = Path(__file__).resolve().parent / "apps" / "torch_model.py"
BODY = {"x": [0.5] * 64}


def fresh_process() -> float:
    port = free_port()
    started = time.perf_counter()
    proc = python("-m", "lepton.runtime", str(APP), "--port", str(port), "--log-level", "warning")
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
        response = httpx.post(f"http://127.0.0.1:{port}/", json=BODY, timeout=60)  # held until setup() is done
        assert response.status_code == 200, response.text
        return time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()


def platform_cold(platform: Platform, http: httpx.Client) -> tuple[float, str]:
    deadline = time.monotonic() + 30
    while platform.info("tiny-model")["replicas"] != 0:
        if time.monotonic() > deadline:
            raise RuntimeError("function did not scale to zero")
        time.sleep(0.05)
    started = time.perf_counter()
    response = http.post(platform.url + "/fn/tiny-model", json=BODY)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    return elapsed, response.headers["x-lepton-cold-start"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fresh-runs", type=int, default=3)
    args = parser.parse_args()

    platforms = {"on": Platform(), "off": Platform(env={"LEPTON_SANDBOX": "off"})}
    cold: dict[str, list[float]] = {"on": [], "off": []}
    try:
        clients = {}
        for mode, platform in platforms.items():
            platform.deploy(APP)
            clients[mode] = httpx.Client(headers={"Authorization": f"Bearer {platform.api.token}"}, timeout=60)
            clients[mode].post(platform.url + "/fn/tiny-model", json=BODY)  # warm the connection pool
        for _ in range(args.runs):
            for mode, platform in platforms.items():
                seconds, flag = platform_cold(platform, clients[mode])
                assert flag == "1", "expected a cold start"
                cold[mode].append(seconds)
        for http in clients.values():
            http.close()
        sandbox = platforms["on"].info("tiny-model")["sandbox"]
        fresh = [fresh_process() for _ in range(args.fresh_runs)]
    finally:
        for platform in platforms.values():
            platform.close()

    for mode, samples in cold.items():
        print(
            f"scale-from-zero through the platform (forked replica), sandbox {mode}, {args.runs} runs: "
            f"p50 {statistics.median(samples) * 1000:.1f} ms  p90 {pct(samples, 90) * 1000:.1f} ms  min {min(samples) * 1000:.1f} ms"
        )
    p50, off_p50, fresh_p50 = statistics.median(cold["on"]), statistics.median(cold["off"]), statistics.median(fresh)
    print(f"sandbox: {sandbox}; it adds {(p50 - off_p50) * 1000:+.1f} ms to the p50   (goal: <= +3 ms)")
    print(f"fresh process (python start, import torch, setup, first 200), {args.fresh_runs} runs: p50 {fresh_p50 * 1000:.0f} ms")
    print(f"speed-up with the sandbox on: {fresh_p50 / p50:.1f}x   (goals: p50 <= 25 ms, >= 30x)")


if __name__ == "__main__":
    main()
