"""The cluster install (knative/install): manifests that parse, a Broker that passes Knative's
schema and our rules, RBAC that covers what the backend does, a dashboard over real metrics."""

from __future__ import annotations

import json
import re
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


def test_rbac_covers_every_kind_the_backend_applies():
    role = next(d for d in documents("rbac.yaml") if d["kind"] == "Role")
    granted = {(group, resource): set(rule["verbs"]) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}
    for kind, (group, _, plural) in KINDS.items():
        needed = {"get", "list"} if kind == "Broker" else {"get", "list", "patch", "delete"}
        assert needed <= granted.get((group, plural), set()), kind


def test_dashboard_uses_metrics_the_platform_and_runtime_export():
    from lepton.runtime.metrics import Metrics
    from lepton_platform.metrics import PlatformMetrics

    exported = set()
    for registry in (PlatformMetrics().registry, Metrics("fn").registry):
        for family in registry.collect():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            exported |= {family.name + suffix for suffix in suffixes}
    dashboard = json.loads((INSTALL / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(lepton_[a-z_]+)", e)}
    assert used and used <= exported, used - exported
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("invocations", "errors", "latency", "cold starts", "replicas", "lag"):
        assert topic in titles
