"""Knative objects for a function, from its spec (the mapping in ARCHITECTURE.md):

- the function        -> serving.knative.dev/v1 Service (one revision per artifact + spec)
- `on_event`, `on_bucket` -> eventing.knative.dev/v1 Trigger on the platform's Broker
- `on_cron`           -> sources.knative.dev/v1 PingSource

Every object carries labels naming its function and revision, so `kubectl get -l
lepton.dev/function=NAME` finds them all.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from lepton.spec import FunctionSpec
from lepton.triggers import BucketTrigger, CronTrigger, Delivery, EventTrigger

MANAGED_BY = {"app.kubernetes.io/managed-by": "lepton"}
SERVICE_API = {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}
DEFAULT_IMAGE = "ghcr.io/lepton-dev/lepton-runtime:0.1.0"


@dataclass(frozen=True)
class Target:
    """Where and how the objects run: namespace, Broker, runtime image, artifact location."""

    namespace: str = "default"
    broker: str = "default"
    image: str = DEFAULT_IMAGE
    artifact_url: str = ""
    digest: str = ""
    s3_endpoint: str | None = None


def iso_duration(seconds: float) -> str:
    """Seconds as an ISO-8601 duration, as Knative's delivery fields want them (PT0.2S)."""
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def revision_suffix(spec: FunctionSpec, digest: str) -> str:
    """Same artifact and spec, same Knative revision name: re-applying is a no-op."""
    return hashlib.sha256((digest + spec.model_dump_json()).encode()).hexdigest()[:8]


def labels(spec: FunctionSpec, revision: str) -> dict[str, str]:
    return {**MANAGED_BY, "lepton.dev/function": spec.name, "lepton.dev/revision": revision}


def service(spec: FunctionSpec, target: Target) -> dict[str, Any]:
    revision = f"{spec.name}-{revision_suffix(spec, target.digest)}"
    annotations = {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/min-scale": str(spec.min_scale),
        "autoscaling.knative.dev/max-scale": str(spec.max_scale),
        "autoscaling.knative.dev/target": f"{spec.autoscale_target:g}",
        # Knative's stable window is what Lepton calls scale_down_after (6 s to 1 h).
        "autoscaling.knative.dev/window": f"{min(3600, max(6, math.ceil(spec.scale_down_after)))}s",
    }
    env = [
        {"name": "LEPTON_ARTIFACT_URL", "value": target.artifact_url},
        {"name": "LEPTON_ARTIFACT_DIGEST", "value": target.digest},
        {"name": "LEPTON_FUNCTION", "value": spec.name},
        {"name": "LEPTON_REVISION", "value": revision},
    ]
    if target.s3_endpoint:
        env.append({"name": "LEPTON_S3_ENDPOINT_URL", "value": target.s3_endpoint})
    if spec.buckets:
        env.append({"name": "LEPTON_BUCKETS", "value": ",".join(spec.buckets)})
    env += [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    # The artifact reader's and the buckets' credentials: a Secret per function, holding
    # credentials scoped to its own buckets, never the platform's.
    env_from = [{"secretRef": {"name": f"lepton-{spec.name}", "optional": True}}] + [{"secretRef": {"name": s}} for s in spec.secrets]
    requests = {"cpu": spec.cpu, "memory": spec.memory}
    limits: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpu:
        limits["nvidia.com/gpu"] = str(spec.gpu)
    container = {
        "name": "function", "image": target.image, "env": env, "envFrom": env_from,
        "ports": [{"containerPort": 8080, "name": "http1"}],
        "resources": {"requests": requests, "limits": limits},
        "readinessProbe": {"httpGet": {"path": "/readyz"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/healthz"}, "periodSeconds": 10},
    }
    meta: dict[str, Any] = {"name": spec.name, "namespace": target.namespace, "labels": labels(spec, revision),
                            "annotations": {"lepton.dev/artifact": target.digest}}
    if not spec.public:
        meta["labels"]["networking.knative.dev/visibility"] = "cluster-local"
    return {
        **SERVICE_API,
        "metadata": meta,
        "spec": {"template": {
            "metadata": {"name": revision, "labels": labels(spec, revision), "annotations": annotations},
            "spec": {"containerConcurrency": spec.concurrency, "timeoutSeconds": math.ceil(spec.timeout), "containers": [container]},
        }},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}}


def delivery(policy: Delivery) -> dict[str, Any]:
    out: dict[str, Any] = {"retry": policy.retry, "backoffPolicy": policy.backoff, "backoffDelay": iso_duration(policy.delay)}
    if policy.timeout:
        out["timeout"] = iso_duration(policy.timeout)
    if policy.dead_letter:
        out["deadLetterSink"] = _ref(policy.dead_letter)
    return out


def _short_id(trigger: Any) -> str:
    return hashlib.sha256(json.dumps(trigger.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:8]


def trigger_objects(spec: FunctionSpec, target: Target, revision: str) -> list[dict[str, Any]]:
    out = []
    for trig in spec.triggers:
        name = f"{spec.name[:52]}-{_short_id(trig)}"
        meta = {"name": name, "namespace": target.namespace, "labels": labels(spec, revision)}
        if isinstance(trig, CronTrigger):
            source: dict[str, Any] = {"schedule": trig.schedule, "timezone": trig.timezone, "sink": _ref(spec.name)}
            if trig.data is not None:
                source["contentType"] = "application/json"
                source["data"] = json.dumps(trig.data)
            out.append({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": meta, "spec": source})
            continue
        body: dict[str, Any] = {"broker": target.broker, "subscriber": _ref(spec.name)}
        if isinstance(trig, BucketTrigger):
            body["filters"] = trig.as_filters()
            body["delivery"] = delivery(Delivery())
        elif isinstance(trig, EventTrigger):
            if trig.filters:
                # With `filters` set Knative ignores `filter`: fold exact attributes into filters.
                exact = [{"exact": dict(trig.attributes)}] if trig.attributes else []
                body["filters"] = exact + [dict(f) for f in trig.filters]
            elif trig.attributes:
                body["filter"] = {"attributes": dict(trig.attributes)}
            body["delivery"] = delivery(trig.delivery)
        out.append({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta, "spec": body})
    return out


def render(spec: FunctionSpec, target: Target) -> list[dict[str, Any]]:
    """The Service first, then its Triggers and PingSources (they refer to it)."""
    svc = service(spec, target)
    return [svc, *trigger_objects(spec, target, svc["spec"]["template"]["metadata"]["name"])]
