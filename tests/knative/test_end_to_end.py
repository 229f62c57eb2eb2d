"""End to end in the real images: the platform image runs `lepton up` with the install
manifest's command and env against the fake Kubernetes API (as its service account, so RBAC
applies), a deploy goes through its API, and the function's "pod" is the runtime image run
with exactly the env the rendered Service gives its container (Secret values read from the
fake API, as the kubelet would) plus the variables Knative itself injects. Nothing else: the
pod must fetch its artifact from the platform and write its bucket through it."""

from __future__ import annotations

import os
import signal

import httpx
import pytest

import lepton
from lepton.loader import load_functions
from tests.helpers import FUNCTIONS, free_port
from tests.knative import images
from tests.knative.fake_api import PLATFORM_USER, FakeCluster, FakeServer
from tests.knative.pods import pod_env
from tests.knative.test_images import platform_deployment

pytestmark = pytest.mark.slow
NS = "lepton"


def test_a_function_runs_in_the_runtime_image_with_only_its_services_env(runtime_image, platform_image, tmp_path):
    deployment = platform_deployment()
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    (state_mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "state"]
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10001, 10001)  # what fsGroup does to the volume
    kube = tmp_path / "kube"
    kube.mkdir()
    port, pod_port = free_port(), free_port()
    command = list(container["command"])
    command[command.index("--port") + 1] = str(port)

    cluster = FakeCluster()
    cluster.urls["touch"] = f"http://127.0.0.1:{pod_port}"
    with FakeServer(cluster, free_port()) as api:
        api.kubeconfig(kube / "config", as_platform=True)
        os.chmod(kube / "config", 0o644)
        # What the test changes, because there is no cluster here: the kubeconfig stands in
        # for the service account's token; the platform's URL and the Broker's ingress are
        # on loopback instead of cluster DNS; the port is a free one.
        env |= {
            "KUBECONFIG": "/etc/lepton-test/kube/config",
            "LEPTON_KNATIVE_PLATFORM_URL": f"http://127.0.0.1:{port}",
            "LEPTON_KNATIVE_BROKER_URL": f"{api.url}/broker",
            "LEPTON_KNATIVE_READY_TIMEOUT": "60",
        }
        with images.run_container(
            platform_image,
            env=env,
            command=command,
            log=tmp_path / "platform.log",
            mounts=[f"{state}:{state_mount}", f"{kube}:/etc/lepton-test/kube:ro"],
        ) as platform:
            url = f"http://127.0.0.1:{port}"
            images.wait_http(url, "/healthz", container=platform)
            token = (state / "token").read_text().strip()
            source = FUNCTIONS / "platform" / "buckets.py"
            artifact = lepton.package(source, load_functions(f"{source}:touch"))
            with lepton.Client(url, token) as client:
                client.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
                deployed = client.request("POST", "/v1/functions", json={"artifact": artifact.digest, "function": "touch"}).json()
            assert deployed["revision"] == "touch-00001", platform.output()

            service = cluster.get("services", NS, "touch")
            revision = service["spec"]["template"]["metadata"]["name"]
            pod = {
                **pod_env(cluster, service),
                "PORT": str(pod_port),
                "K_SERVICE": "touch",
                "K_CONFIGURATION": "touch",
                "K_REVISION": revision,
            }
            with images.run_container(runtime_image, env=pod, log=tmp_path / "pod.log") as box:
                images.wait_http(f"http://127.0.0.1:{pod_port}", "/readyz", container=box)
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
                    answer = http.post("/fn/touch", json={"bucket": "allowed"}).json()
                    assert answer == {"status": 200, "body": "written by touch-00001"}, box.output()
                    assert http.post("/fn/touch", json={"bucket": "elsewhere"}).json()["status"] == 403
                    assert http.get("/v1/buckets/allowed/objects/from-function.txt").content == b"written by touch-00001"
            assert box.proc.returncode in (0, -signal.SIGTERM, 128 + signal.SIGTERM), box.output()
        assert "Traceback" not in platform.output(), platform.output()
    refused = [r for r in cluster.requests if r[0] == PLATFORM_USER and r[3] in (401, 403)]
    assert not refused, refused
