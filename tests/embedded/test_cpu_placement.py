"""The embedded platform honours `cpu`: each replica runs on cores of its own."""

import os
import re
from pathlib import Path

from tests.embedded.conftest import PlatformProcess, start_platform


def allowed_cpus(pid: int) -> set[int]:
    text = Path(f"/proc/{pid}/status").read_text()
    spans = re.search(r"Cpus_allowed_list:\s*(\S+)", text).group(1)
    cores: set[int] = set()
    for span in spans.split(","):
        low, _, high = span.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def test_each_replica_runs_on_the_cores_it_was_given(platform):
    platform.deploy(platform.source("app.py"), "greet")
    with platform.http() as http:
        assert http.post("/fn/greet", json={}).status_code == 200
    (replica,) = platform.info("greet")["replica_details"]
    assert len(replica["cpus"]) == 1 and replica["cpus"][0] in os.sched_getaffinity(0)
    assert allowed_cpus(replica["pid"]) == set(replica["cpus"])


def test_cpu_affinity_can_be_turned_off(tmp_path):
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env={"LEPTON_CPU_AFFINITY": "false"}), home, tmp_path / "src")
    try:
        running.deploy(running.source("app.py"), "greet")
        with running.http() as http:
            assert http.post("/fn/greet", json={}).status_code == 200
        (replica,) = running.info("greet")["replica_details"]
        assert replica["cpus"] == [] and allowed_cpus(replica["pid"]) == os.sched_getaffinity(0)
    finally:
        running.process.stop()
