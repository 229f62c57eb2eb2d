"""The cluster install (knative/install): manifests that parse, a Broker that passes Knative's
schema and our rules, RBAC that covers what the backend does, a dashboard over real metrics."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml

from lepton_knative.cluster import KINDS
from lepton_knative.validation import problems

INSTALL = Path(__file__).resolve().parents[2] / "knative" / "install"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((INSTALL / name).read_text()) if d]


def test_kustomization_lists_files_that_parse():
    kustomization = documents("kustomization.yaml")[0]
    for resource in kustomization["resources"]:
        assert documents(resource), resource
    for generator in kustomization["configMapGenerator"]:
        for file in generator["files"]:
            json.loads((INSTALL / file).read_text())


def test_broker_is_valid_knative():
    (broker,) = documents("broker.yaml")
    broker["metadata"]["namespace"] = "lepton"
    assert problems(broker) == []


def kustomize(path: Path) -> list[dict]:
    built = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    return [d for d in yaml.safe_load_all(built.stdout) if d]


def test_kustomize_builds_the_install_without_optional_crds():
    objects = kustomize(INSTALL)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == [
        "Broker",
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PersistentVolumeClaim",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ], "no Prometheus Operator kinds unless the monitoring component is chosen"
    assert all(o["metadata"].get("namespace") == "lepton" for o in objects if o["kind"] != "Namespace")
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] == 10001, (
        "the state volume must be writable for uid 10001"
    )
    assert pod["serviceAccountName"] == "lepton-platform"
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LEPTON_BACKEND"] == "knative" and env["LEPTON_KNATIVE_NAMESPACE"] == "lepton"
    service = next(o for o in objects if o["kind"] == "Service")
    port = service["spec"]["ports"][0]["port"]
    assert env["LEPTON_KNATIVE_PLATFORM_URL"] == f"http://{service['metadata']['name']}.lepton.svc.cluster.local:{port}"
    assert container["volumeMounts"][0]["mountPath"] == env["LEPTON_HOME"]
    assert "envFrom" not in container, "S3 credentials are an optional component, not a prerequisite"


def test_optional_components_add_monitoring_and_s3(tmp_path):
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [_relative(tmp_path, INSTALL)],
                "components": [_relative(tmp_path, INSTALL / "components" / c) for c in ("monitoring", "s3")],
            }
        )
    )
    objects = kustomize(tmp_path)
    assert {"ServiceMonitor", "PodMonitor"} <= {o["kind"] for o in objects}
    container = next(o for o in objects if o["kind"] == "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "LEPTON_STORAGE", "value": "s3"} in container["env"]
    assert container["envFrom"] == [{"secretRef": {"name": "lepton-s3"}}]


def _relative(start: Path, to: Path) -> str:
    return os.path.relpath(to, start)


def test_rbac_grants_exactly_what_the_backend_uses():
    role = next(d for d in documents("rbac.yaml") if d["kind"] == "Role")
    granted = {
        (group, resource): set(rule["verbs"]) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]
    }
    owned = {"get", "list", "create", "patch", "delete"}  # server-side apply (create + patch), prune (list + delete)
    expected = {(group, plural): owned for group, _, plural in KINDS.values()}
    expected |= {
        ("", "secrets"): owned - {"get"},
        ("serving.knative.dev", "revisions"): {"get"},
        ("", "pods"): {"list"},
        ("", "pods/log"): {"get"},
    }
    assert granted == expected


def test_dashboard_uses_metrics_the_platform_and_runtime_export(tmp_path):
    from lepton.runtime.metrics import Metrics
    from lepton_platform.broker import Broker
    from lepton_platform.metrics import PlatformMetrics

    platform_metrics = PlatformMetrics()
    broker = Broker(tmp_path / "events.db", "token", platform_metrics, outbox=None, spec_of=lambda name: None)  # its backlog gauges
    exported = set()
    for registry in (platform_metrics.registry, Metrics("fn").registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            exported |= {family.name + suffix for suffix in suffixes}
    dashboard = json.loads((INSTALL / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(lepton_[a-z_]+)", e)}
    broker.log.close()
    assert used and used <= exported, used - exported
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("invocations", "errors", "latency", "cold starts", "replicas", "lag"):
        assert topic in titles
