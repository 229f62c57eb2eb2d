"""Scale from zero, scale out under a burst and back to zero, crashes, restarts, takeovers."""

from __future__ import annotations

import concurrent.futures
import signal
import threading
import time

import httpx

from tests.embedded.conftest import start_platform
from tests.helpers import wait_for


def test_scale_to_zero_and_back(platform):
    platform.deploy(platform.source("app.py"), "greet")
    wait_for(lambda: platform.info("greet")["replicas"] == 0)
    with platform.http() as http:
        cold = http.post("/fn/greet", json={"name": "cold"})
        assert cold.status_code == 200 and cold.headers["x-lepton-cold-start"] == "1"
        warm = http.post("/fn/greet", json={"name": "warm"})
        assert warm.headers["x-lepton-cold-start"] == "0"
        assert cold.json()["pid"] == warm.json()["pid"]
        metrics = http.get("/metrics").text
    assert 'lepton_cold_starts_total{function="greet"} 1.0' in metrics
    assert 'lepton_replica_start_seconds_count{forked="true",function="greet"}' in metrics


def test_burst_scales_out_then_back_to_zero(platform):
    platform.deploy(platform.source("app.py"), "work")
    seen = set()
    peak = 0

    def watch(stop: threading.Event) -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, platform.info("work")["ready"])
            time.sleep(0.05)

    stop = threading.Event()
    watcher = threading.Thread(target=watch, args=(stop,))
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            for _ in range(3):
                responses = list(pool.map(lambda _: httpx.post(platform.url + "/fn/work", json={"seconds": 0.4}, timeout=30), range(12)))
                assert all(r.status_code == 200 for r in responses)
                seen |= {r.json()["pid"] for r in responses}
    finally:
        stop.set()
        watcher.join()
    assert peak >= 2 and len(seen) >= 2
    assert peak <= 4  # max_scale
    wait_for(lambda: platform.info("work")["replicas"] == 0, timeout=30)


def test_a_crashing_replica_gives_502_and_is_replaced(platform):
    platform.deploy(platform.source("app.py"), "work")
    crashed = httpx.post(platform.url + "/fn/work", json={"crash": True}, timeout=30)
    assert crashed.status_code == 502 and "'work'" in crashed.json()["detail"]
    after = httpx.post(platform.url + "/fn/work", json={"seconds": 0}, timeout=30)
    assert after.status_code == 200
    assert httpx.get(platform.url + "/healthz").json()["status"] == "ok"


def test_functions_survive_a_platform_restart(platform, tmp_path):
    platform.deploy(platform.source("app.py"))
    assert platform.process.stop(signal.SIGTERM) is not None
    platform.process = start_platform(platform.home, tmp_path / "restarted.log")
    with platform.http() as http:
        response = http.post("/fn/greet", json={"name": "again"})
        assert response.status_code == 200 and response.headers["x-lepton-cold-start"] == "1"
        assert {f["name"] for f in http.get("/v1/functions").json()} == {"greet", "work"}


def test_no_failed_request_while_a_new_revision_takes_over(platform):
    platform.deploy(platform.source("app.py", 1), "work")
    results: list[tuple[int, int | None]] = []
    stop = threading.Event()

    def steady_load() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                r = http.post(platform.url + "/fn/work", json={"seconds": 0.05})
                results.append((r.status_code, r.json().get("version") if r.status_code == 200 else None))

    threads = [threading.Thread(target=steady_load) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: any(v == 1 for _, v in results), timeout=30, message="the first revision serves")
        platform.deploy(platform.source("app.py", 2), "work")
        wait_for(lambda: sum(v == 2 for _, v in results) >= 20, timeout=30, message="the new revision serves a while")
    finally:
        stop.set()
        for t in threads:
            t.join()
    codes = [code for code, _ in results]
    versions = [v for _, v in results]
    assert codes and set(codes) == {200}, f"failed requests: {[c for c in codes if c != 200]}"
    assert versions[0] == 1 and versions[-1] == 2
