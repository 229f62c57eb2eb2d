"""The real images from knative/Dockerfile, built with buildah and run the way the cluster runs
them: the runtime as a function pod's container, the platform with the command and env of the
`lepton-platform` Deployment that `kubectl kustomize knative/install` renders."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.helpers import free_port
from tests.knative import images
from tests.knative.fake_api import FakeCluster, FakeServer

pytestmark = pytest.mark.slow
INSTALL = images.ROOT / "knative" / "install"
EXCLUDED = ("torch", "boto3", "botocore", "kubernetes")


def test_runtime_image_has_core_packages_only_and_runs_as_10001(runtime_image, tmp_path):
    script = "id -u; cat /opt/lepton/packages.txt"
    with images.run_container(runtime_image, env={}, command=["sh", "-c", script], log=tmp_path / "inspect.log") as box:
        assert box.wait() == 0, box.output()
        uid, *packages = box.output().split()
    assert uid == "10001"
    names = {line.partition("==")[0].lower(): line.partition("==")[2] for line in packages}
    assert all("==" in line for line in packages), packages
    assert {"fastapi", "uvicorn", "lepton"} <= names.keys()
    assert not names.keys() & set(EXCLUDED), names.keys() & set(EXCLUDED)
    # What a pod runs, with nothing set: one line that names what is missing, exit 2.
    with images.run_container(runtime_image, env={}, log=tmp_path / "entrypoint.log") as box:
        assert box.wait() == 2, box.output()
        lines = box.output().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "LEPTON_FUNCTION" in lines[0], lines


def platform_deployment() -> dict:
    """The `lepton-platform` Deployment as `kubectl kustomize knative/install` renders it."""
    if shutil.which("kubectl"):
        rendered = subprocess.run(["kubectl", "kustomize", str(INSTALL)], capture_output=True, text=True, timeout=60, check=True).stdout
        documents = list(yaml.safe_load_all(rendered))
    else:  # the same for this kustomization, which only lists resources and sets their namespace
        kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
        assert kustomization.keys() <= {"apiVersion", "kind", "namespace", "resources", "configMapGenerator"}, (
            f"install kustomizes more than this fallback reads ({sorted(kustomization)}): install kubectl"
        )
        documents = [d for name in kustomization["resources"] for d in yaml.safe_load_all((INSTALL / name).read_text())]
    return next(d for d in documents if d and d["kind"] == "Deployment" and d["metadata"]["name"] == "lepton-platform")


def test_platform_image_serves_with_the_deployments_command_and_env(platform_image, tmp_path, request):
    pod = platform_deployment()["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "platform")
    assert container["image"].rpartition(":")[0].endswith("/lepton-platform"), container["image"]
    config = images.image_config(platform_image)
    if "runAsUser" in pod.get("securityContext", {}):
        assert config["User"] == str(pod["securityContext"]["runAsUser"])
    env = {}
    for item in container.get("env", []):
        assert "value" in item, f"env {item['name']} comes from {item}: teach this test its value"
        env[item["name"]] = item["value"]
    for source in container.get("envFrom", []):
        if source.get("secretRef", {}).get("name") == "lepton-s3":
            moto = request.getfixturevalue("moto_server")
            env |= {"LEPTON_S3_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        else:
            pytest.fail(f"envFrom {source}: teach this test its values")
    (state_mount,) = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "state"]
    assert env["LEPTON_HOME"] == state_mount

    # What this test adds to reach its fake cluster, and nothing else:
    # - KUBECONFIG, a kubeconfig for the fake Kubernetes API mounted read-only (a pod would use
    #   its service account instead);
    # - another --port: the container shares the host's network, where 8765 may be taken;
    # - the state volume: a host folder owned by uid 10001, as fsGroup makes it in the cluster.
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10001, 10001)
    kube = tmp_path / "kube"
    kube.mkdir()
    port = free_port()
    command = list(container["command"]) + list(container.get("args", []))
    command[command.index("--port") + 1] = str(port)
    with FakeServer(FakeCluster(), free_port()) as api:
        api.kubeconfig(kube / "config")
        os.chmod(kube / "config", 0o644)
        env["KUBECONFIG"] = "/etc/lepton-test/kube/config"
        with images.run_container(
            platform_image,
            env=env,
            command=command,
            log=tmp_path / "platform.log",
            mounts=[f"{state}:{state_mount}", f"{kube}:/etc/lepton-test/kube:ro"],
        ) as box:
            images.wait_http(f"http://127.0.0.1:{port}", "/healthz", timeout=60, container=box)
            assert (state / "token").is_file(), sorted(p.name for p in state.iterdir())
            box.stop()  # SIGTERM, as the kubelet sends it
    assert "Application shutdown complete" in box.output() and "Traceback" not in box.output(), box.output()
