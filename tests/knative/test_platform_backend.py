"""The platform service with `backend: knative`: the same /v1 API, with deploys applied to a
(fake) Kubernetes API, artifacts on a (moto) S3, the Service's pod played by the runtime
image's entrypoint, and events forwarded to the Knative Broker's ingress."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import lepton
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.embedded.test_events import STRUCTURED, wait_for
from tests.helpers import Process, free_port, start_process
from tests.knative.fake_api import FakeCluster, FakeServer
from tests.knative.test_cluster import S3, objects
from tests.test_cli_run import lepton_cli

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.py"


@pytest.fixture
def knative(tmp_path: Path, moto_server: str) -> Iterator[tuple[PlatformProcess, FakeServer, dict[str, str]]]:
    fake = FakeCluster()
    with FakeServer(fake, free_port()) as server:
        env = {**S3, "KUBECONFIG": str(server.kubeconfig(tmp_path / "kubeconfig")), "LEPTON_BACKEND": "knative",
               "LEPTON_STORAGE": "s3", "LEPTON_S3_ENDPOINT_URL": moto_server, "LEPTON_S3_BUCKET_PREFIX": f"k{uuid.uuid4().hex[:8]}-",
               "LEPTON_ARTIFACT_BUCKET": f"artifacts-{uuid.uuid4().hex[:8]}", "LEPTON_KNATIVE_BROKER_URL": f"{server.url}/broker"}
        home = tmp_path / "home"
        platform = PlatformProcess(start_platform(home, tmp_path / "platform.log", env=env), home, tmp_path / "src")
        try:
            yield platform, server, env
        finally:
            platform.process.stop(signal.SIGTERM)


def start_pod(service: dict, env: dict[str, str], port: int, log: Path) -> Process:
    """Run what the Service's container would run: the runtime image's entrypoint."""
    container = service["spec"]["template"]["spec"]["containers"][0]
    pod_env = {**S3, **{e["name"]: e["value"] for e in container["env"]}, "PORT": str(port), "HOST": "127.0.0.1",
               "LEPTON_HOME": str(log.parent / f"pod-{port}")}
    return start_process(["-m", "lepton_knative.entrypoint"], log, f"http://127.0.0.1:{port}", env=pod_env, ready_path="/readyz")


def test_the_v1_api_deploys_to_knative(knative, tmp_path):
    platform, server, env = knative
    pod_port = free_port()
    server.cluster.urls["hello"] = f"http://127.0.0.1:{pod_port}"
    (deployed,) = platform.deploy(HELLO)
    assert deployed["revision"] == "hello-00001" and deployed["status"] == "ready"
    service = objects(server, "services")["hello"]
    pod = start_pod(service, env, pod_port, tmp_path / "pod.log")
    try:
        with platform.http() as http:
            answer = http.post("/fn/hello", json={"name": "cluster", "excited": True})
            assert answer.json() == {"greeting": "Hello, cluster!"} and answer.headers["x-lepton-revision"] == "hello-00001"
            info = http.get("/v1/functions/hello").json()
            assert info["backend"] == "knative" and info["service_url"] == f"http://127.0.0.1:{pod_port}"

            server.cluster.fail["hello"] = "Container failed with: exec format error"
            changed = HELLO.read_text().replace("Hello,", "Hi,")
            (tmp_path / "v2").mkdir()
            (tmp_path / "v2" / "hello.py").write_text(changed)
            with pytest.raises(lepton.InvocationError) as failed:
                platform.deploy(tmp_path / "v2" / "hello.py")
            assert failed.value.status_code == 422
            assert "failed on Knative; the previous revision keeps serving" in str(failed.value)
            assert "RevisionFailed: Container failed with: exec format error" in str(failed.value)
            assert http.post("/fn/hello", json={"name": "still"}).json() == {"greeting": "Hello, still."}
            assert [r["status"] for r in http.get("/v1/functions/hello/revisions").json()] == ["ready", "failed"]

            assert http.post("/v1/events", json={"specversion": "1.0", "id": "k-1", "source": "/t", "type": "com.example"},
                             headers=STRUCTURED).status_code == 202
            forwarded = wait_for(lambda: [e for e in server.cluster.broker_events if e["id"] == "k-1"], message="event reached the Broker")
            assert forwarded[0]["type"] == "com.example"

            assert http.delete("/v1/functions/hello").status_code == 200
            assert objects(server, "services") == {}
    finally:
        pod.stop()
    assert httpx.get(f"{platform.url}/v1/functions", headers={"Authorization": f"Bearer {platform.token}"}).json() == []


def test_knative_backend_needs_s3_storage(tmp_path, monkeypatch):
    monkeypatch.setenv("LEPTON_BACKEND", "knative")
    monkeypatch.setenv("LEPTON_HOME", str(tmp_path / "home"))
    result = lepton_cli("up", "--port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: configuration backend: knative needs storage.backend: s3 "
                                     "(the cluster fetches artifacts and buckets from S3)")
