"""Playing a Knative pod in tests: the env a kubelet would give the Service's container, read
from the rendered Service and the Secrets stored in the fake API, and nothing else."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.helpers import Process, start_process
from tests.knative.fake_api import FakeCluster


class MissingSecret(AssertionError):
    """What the kubelet reports as CreateContainerConfigError."""


def _secret(cluster: FakeCluster, namespace: str, name: str) -> dict[str, str]:
    stored = cluster.get("secrets", namespace, name)
    if stored is None:
        raise MissingSecret(f'secret "{name}" not found')
    return {k: base64.b64decode(v).decode() for k, v in (stored.get("data") or {}).items()}


def container_env(cluster: FakeCluster, namespace: str, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as Kubernetes builds it: `envFrom` Secrets first, then
    `env` (literal values and `secretKeyRef`s); a missing Secret or key fails like the kubelet."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(_secret(cluster, namespace, source["secretRef"]["name"]))
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
            continue
        ref = entry["valueFrom"]["secretKeyRef"]
        values = _secret(cluster, namespace, ref["name"])
        if ref["key"] not in values:
            raise MissingSecret(f"couldn't find key {ref['key']} in Secret {namespace}/{ref['name']}")
        env[entry["name"]] = values[ref["key"]]
    return env


def pod_env(cluster: FakeCluster, service: dict[str, Any]) -> dict[str, str]:
    """The env of a pod of the Service's newest template."""
    (container,) = service["spec"]["template"]["spec"]["containers"]
    return container_env(cluster, service["metadata"]["namespace"], container)


def routed_envs(cluster: FakeCluster, namespace: str, name: str) -> dict[str, dict[str, str]]:
    """The env a new pod of each Revision the Service routes to would get now (by Revision):
    whatever was deployed, failed or rolled back since, every serving Revision must still be
    able to start a pod."""
    service = cluster.get("services", namespace, name)
    out = {}
    for target in service["status"].get("traffic") or []:
        revision = cluster.get("revisions", namespace, target["revisionName"])
        (container,) = revision["spec"]["containers"]
        out[target["revisionName"]] = container_env(cluster, namespace, container)
    return out


def start_pod(cluster: FakeCluster, service: dict[str, Any], port: int, log: Path) -> Process:
    """The runtime image's entrypoint as a host process with the pod's env (plus PORT, which
    Knative sets, and HOST, to stay on loopback here)."""
    env = {
        **pod_env(cluster, service),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "K_REVISION": service["spec"]["template"]["metadata"]["name"],
    }
    return start_process(
        ["-m", "lepton_knative.entrypoint"], log, f"http://127.0.0.1:{port}", env=env, ready_path="/_lepton/readyz"
    )  # the probe path of the rendered Service
