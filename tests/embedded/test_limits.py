"""memory= and gpu= hold on the embedded platform: a replica over its memory is stopped and its
caller told why; GPUs are handed out whole, never to more replicas than there are GPUs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.embedded.test_isolation import template_pid
from tests.helpers import FUNCTIONS

LIMITS = FUNCTIONS / "isolation" / "limits.py"


@pytest.fixture(scope="module")
def two_gpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """One platform for these tests, told that the machine has GPUs 0 and 1 (LEPTON_GPUS, the
    NVML override). Each test deploys functions of its own."""
    tmp_path = tmp_path_factory.mktemp("limits")
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env={"LEPTON_GPUS": "0,1"}), home, tmp_path)
    yield running
    running.process.stop(signal.SIGTERM)


def deploy_error(platform: PlatformProcess, name: str) -> str:
    with pytest.raises(Exception) as failure:
        platform.deploy(LIMITS, name)
    return str(failure.value)


def test_a_replica_over_its_memory_is_stopped_and_its_caller_told(two_gpus):
    two_gpus.deploy(LIMITS, "hog")
    with two_gpus.http() as http:
        assert http.post("/fn/hog", json={"mb": 8}).json() == 8 << 20
        response = http.post("/fn/hog", json={"mb": 400})
        assert response.status_code == 502
        assert "'hog'" in response.json()["detail"] and "memory limit of 128Mi" in response.json()["detail"]
        info = http.get("/v1/functions/hog").json()
        assert info["memory_kills"] == 1
        assert http.post("/fn/hog", json={"mb": 8}).json() == 8 << 20  # a fresh replica serves again
        assert http.get("/healthz").json()["status"] == "ok"
    assert two_gpus.process.proc.poll() is None


def test_gpus_are_given_whole_and_never_to_more_replicas_than_there_are(two_gpus):
    two_gpus.deploy(LIMITS, "on-gpu")
    two_gpus.deploy(LIMITS, "on-cpu")
    with two_gpus.http() as http:
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http.post("/fn/on-gpu", json={"hold": 0.5}, timeout=60), range(4)))
        assert [a.status_code for a in answers] == [200] * 4
        seen = {a.json()["replica"]: a.json()["devices"] for a in answers}
        assert set(seen.values()) <= {"0", "1"} and len(seen) == len(set(seen.values())) <= 2, seen
        info = http.get("/v1/functions/on-gpu").json()
        assert info["replicas"] <= 2
        assert sorted(g for r in info["replica_details"] for g in r["gpus"]) == sorted(int(d) for d in seen.values())
        assert http.post("/fn/on-cpu").json() == {"devices": ""}  # asked for none: sees none
        health = http.get("/healthz").json()
        assert health["gpus"] == [0, 1] and health["template_cuda_initialized"] is False
    maps = Path(f"/proc/{template_pid(two_gpus.process.proc.pid)}/maps").read_text()
    assert "libcuda" not in maps and "libnvidia" not in maps


def test_limits_the_machine_cannot_give_are_refused(two_gpus):
    assert "gpu=3" in deploy_error(two_gpus, "greedy") and "2 GPU(s)" in deploy_error(two_gpus, "greedy")
    assert "memory=1000Ti" in deploy_error(two_gpus, "enormous")
    with two_gpus.http() as http:
        assert http.get("/v1/functions/greedy").status_code == 404
        assert http.get("/v1/functions/enormous").status_code == 404
