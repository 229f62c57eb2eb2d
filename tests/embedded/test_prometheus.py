"""A real Prometheus (Debian's `prometheus` package, which `.ci/run` installs) scraping one
`lepton up`: after traffic, a failure, events and a cold start, every query of the Grafana
dashboard (`knative/install/grafana-dashboard.json`) returns series, the replicas' own among
them (the platform's /metrics carries them, labelled with revision and replica)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS, ROOT, free_port

DASHBOARD = ROOT / "knative" / "install" / "grafana-dashboard.json"
PROMETHEUS = shutil.which("prometheus")


def dashboard_queries() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def traffic(platform: PlatformProcess, stop: threading.Event) -> None:
    """Calls that succeed and fail, and events for a trigger, until told to stop."""
    with platform.http() as http:
        while not stop.is_set():
            assert http.post("/fn/ok", json={"n": 1}).status_code == 200
            assert http.post("/fn/boom", json={}).status_code == 500
            event = {"ce-specversion": "1.0", "ce-id": uuid.uuid4().hex, "ce-source": "/tests", "ce-type": "test.observed"}
            assert http.post("/v1/events", content=b"{}", headers={**event, "content-type": "application/json"}).status_code == 202
            time.sleep(0.2)


def test_every_dashboard_query_returns_series_from_a_real_prometheus(tmp_path: Path):
    if PROMETHEUS is None:
        if os.environ.get("CI"):
            pytest.fail("prometheus is not installed; .ci/run installs it (apt-get install prometheus)")
        pytest.skip("needs Debian's prometheus package (apt-get install prometheus)")
    home = tmp_path / "home"
    platform = PlatformProcess(start_platform(home, tmp_path / "platform.log"), home, tmp_path)
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: lepton\n    static_configs:\n"
        f"      - targets: ['{platform.url.removeprefix('http://')}']\n"
    )
    with open(tmp_path / "prometheus.log", "wb") as log:
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log,
            stderr=log,
        )
    stop = threading.Event()
    worker = threading.Thread(target=traffic, args=(platform, stop))
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    try:
        platform.deploy(FUNCTIONS / "platform" / "observed.py")

        def series(query: str) -> list:
            try:
                answer = api.get("/api/v1/query", params={"query": query}).json()
            except (httpx.TransportError, ValueError):
                return []
            assert answer.get("status") in (None, "success"), f"{query}: {answer}"
            return answer.get("data", {}).get("result", [])

        deadline = time.monotonic() + 30
        while not series("up == 1"):  # scraped once before the first call, so cold starts show as increases
            assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()[-2000:]
            time.sleep(0.2)
        worker.start()
        missing = dashboard_queries()
        deadline = time.monotonic() + 40
        while missing and time.monotonic() < deadline:
            missing = [query for query in missing if not series(query)]
            time.sleep(0.5)
        assert not missing, f"dashboard queries with no series: {missing}"
        replicas = series("lepton_requests_total")
        assert {s["metric"]["function"] for s in replicas} >= {"ok", "boom"}
        assert all(s["metric"]["revision"].startswith(s["metric"]["function"]) and s["metric"]["replica"] for s in replicas)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join()
        api.close()
        prometheus.send_signal(signal.SIGTERM)
        prometheus.wait(10)
        platform.process.stop(signal.SIGTERM)
