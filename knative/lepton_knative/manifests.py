"""Knative objects for a function, from its spec (the mapping in the README, "How a deploy works"):

- the function        -> serving.knative.dev/v1 Service (one Knative Revision per template)
- its credentials     -> a v1 Secret `lepton-fn-NAME`: the platform's in-cluster URL and one
                         scoped token per revision that may run (pods read theirs by key)
- `secrets=["HF_TOKEN"]` -> env HF_TOKEN from key HF_TOKEN of the v1 Secret `lepton-secret-hf-token`,
                         which `lepton secret set` writes (one per Lepton secret, shared by functions)
- `on_event`, `on_bucket` -> eventing.knative.dev/v1 Trigger on the platform's Broker
- `on_cron`           -> sources.knative.dev/v1 PingSource

Every object carries labels naming its function and revision, so `kubectl get -l
lepton.dev/function=NAME` finds them all and the platform can prune what a new revision no
longer declares.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from lepton.errors import LeptonError
from lepton.spec import FunctionSpec
from lepton.triggers import BucketTrigger, CronTrigger, Delivery, EventTrigger

MANAGED_BY = {"app.kubernetes.io/managed-by": "lepton"}
SERVICE_API = {"apiVersion": "serving.knative.dev/v1", "kind": "Service"}
DEFAULT_IMAGE = "ghcr.io/lepton-dev/lepton-runtime:0.1.0"
DEFAULT_PLATFORM_URL = "http://lepton-platform.lepton.svc.cluster.local:8765"
SECRET_PREFIX = "lepton-fn-"
USER_SECRET_PREFIX = "lepton-secret-"
USER_SECRET_LABEL = "lepton.dev/secret"
URL_KEY = "url"
CONTAINER = "function"
# Knative's progress deadline (600 s by default): a revision that is not ready by then has
# failed anyway, so the startup probe allows as long before liveness checks begin.
STARTUP_SECONDS = 600
STARTUP_PERIOD = 2
MAX_RETENTION = 3600  # Knative refuses a scale-to-zero-pod-retention-period over 1 h


class RenderError(LeptonError):
    """A function's options have no faithful Knative equivalent; the message names the
    function, the field and the rule."""

    exit_code = 2


@dataclass(frozen=True)
class Target:
    """Where and how the objects run: namespace, Broker, image, artifact, platform URL."""

    namespace: str = "default"
    broker: str = "default"
    image: str = DEFAULT_IMAGE
    digest: str = ""
    platform_url: str = DEFAULT_PLATFORM_URL
    revision: str = ""  # the platform's revision id: names the revision's token (and so its template)


def iso_duration(seconds: float, where: str) -> str:
    """Seconds as an ISO-8601 duration (PT0.2S). Knative parses these with
    github.com/rickb777/date/period, which keeps one decimal of a second: PT0.05S would be
    zero, so anything finer is refused rather than silently changed."""
    tenths = round(seconds * 10)
    if tenths <= 0 or abs(tenths - seconds * 10) > 1e-6:
        raise RenderError(
            f"{where}: {seconds:g} s cannot be said to Knative, which keeps one decimal of a second "
            f"(PT{seconds:g}S would be read as PT{math.floor(seconds * 10) / 10:g}S); use a multiple of 0.1 s"
        )
    text = f"{tenths / 10:.1f}".removesuffix(".0")
    return f"PT{text}S"


def secret_name(function: str) -> str:
    return SECRET_PREFIX + function


def user_secret_name(name: str) -> str:
    """The Kubernetes Secret of Lepton secret `name` (HF_TOKEN -> lepton-secret-hf-token):
    secret names are upper case with no '-', so the lower-case form is unique."""
    return USER_SECRET_PREFIX + name.lower().replace("_", "-")


def _label_value(text: str) -> str:
    """`text` as a label value (at most 63 characters), a hash standing in for the tail."""
    if len(text) <= 63:
        return text
    return f"{text[:54].rstrip('-')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def user_secret(name: str, value: str, namespace: str) -> dict[str, Any]:
    """The Secret holding one Lepton secret, under its own name as the key (`data`, like
    the function Secret). Not labelled with a function: pruning never touches it."""
    kube_name = user_secret_name(name)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": kube_name,
            "namespace": namespace,
            "labels": {**MANAGED_BY, USER_SECRET_LABEL: _label_value(kube_name.removeprefix(USER_SECRET_PREFIX))},
        },
        "data": {name: base64.b64encode(value.encode()).decode()},
    }


def token_key(revision: str) -> str:
    """The key of a platform revision's scoped token in its function's Secret. Named by the
    revision's id, never re-derived from a render: a revision's pods find their token
    whatever the platform's settings have become since. Each platform revision so has a
    template of its own, and a failed one can be retried as a new revision."""
    return f"token-{revision}" if revision else "token"


def labels(spec: FunctionSpec, revision: str) -> dict[str, str]:
    return {**MANAGED_BY, "lepton.dev/function": spec.name, "lepton.dev/revision": revision}


def autoscaling_target(spec: FunctionSpec) -> tuple[str, str]:
    """(target, target-utilization-percentage) for Knative, whose effective target is their
    product. A target derived from `concurrency` keeps Knative's 70% (applied once, by
    Knative); a target the user gave, or the defaults, are meant as they are."""
    if not spec.target and spec.concurrency:
        return str(spec.concurrency), "70"
    return f"{spec.autoscale_target:g}", "100"


def _secret_env(name: str, key: str, function: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret_name(function), "key": key}}}


def revision_name(service_name: str, template: dict[str, Any]) -> str:
    """A name that changes whenever the template does (Knative refuses a changed template
    under an old name) and stays when it does not (re-applying is a no-op)."""
    body = copy.deepcopy(template)
    body["metadata"].pop("name", None)
    body["metadata"]["labels"].pop("lepton.dev/revision", None)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return f"{service_name}-{digest[:8]}"


def template(spec: FunctionSpec, target: Target) -> dict[str, Any]:
    """The Service's revision template, named by its own content."""
    if spec.scale_down_after > MAX_RETENTION:
        raise RenderError(
            f"function {spec.name!r}: scale_down_after {spec.scale_down_after:g} s: Knative keeps a last pod at most "
            f"{MAX_RETENTION} s after its last request (scale-to-zero-pod-retention-period); use at most {MAX_RETENTION}, "
            "or min_scale=1 to keep one always"
        )
    value, utilization = autoscaling_target(spec)
    annotations = {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/min-scale": str(spec.min_scale),
        "autoscaling.knative.dev/max-scale": str(spec.max_scale),
        "autoscaling.knative.dev/target": value,
        "autoscaling.knative.dev/target-utilization-percentage": utilization,
        # "Stay up this long after the last request" is the retention period, not the
        # autoscaler's averaging window.
        "autoscaling.knative.dev/scale-to-zero-pod-retention-period": f"{math.ceil(spec.scale_down_after)}s",
    }
    env: list[dict[str, Any]] = [
        {"name": "LEPTON_FUNCTION", "value": spec.name},
        {"name": "LEPTON_ARTIFACT_DIGEST", "value": target.digest},
        _secret_env("LEPTON_URL", URL_KEY, spec.name),
        _secret_env("LEPTON_TOKEN", token_key(target.revision), spec.name),
    ]
    env += [{"name": k, "value": v} for k, v in sorted(spec.env.items())]
    env += [{"name": s, "valueFrom": {"secretKeyRef": {"name": user_secret_name(s), "key": s}}} for s in spec.secrets]
    requests = {"cpu": spec.cpu, "memory": spec.memory}
    limits: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpu:
        limits["nvidia.com/gpu"] = str(spec.gpu)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": target.image,
        "env": env,
        "ports": [{"containerPort": 8080, "name": "http1"}],
        "resources": {"requests": requests, "limits": limits},
        # The artifact fetch and setup() run before readyz answers: the startup probe holds
        # the liveness probe off until then, so a slow model load is not restarted in a loop.
        # The probes live under /_lepton/, which no function's own paths reach.
        "startupProbe": {
            "httpGet": {"path": "/_lepton/readyz", "port": 8080},
            "periodSeconds": STARTUP_PERIOD,
            "failureThreshold": STARTUP_SECONDS // STARTUP_PERIOD,
        },
        "readinessProbe": {"httpGet": {"path": "/_lepton/readyz"}, "periodSeconds": 1},
        "livenessProbe": {"httpGet": {"path": "/_lepton/healthz"}, "periodSeconds": 10},
    }
    body: dict[str, Any] = {
        "metadata": {"labels": labels(spec, ""), "annotations": annotations},
        "spec": {"containerConcurrency": spec.concurrency, "timeoutSeconds": math.ceil(spec.timeout), "containers": [container]},
    }
    name = revision_name(spec.name, body)
    body["metadata"] = {"name": name, **body["metadata"]}
    body["metadata"]["labels"]["lepton.dev/revision"] = name
    return body


LATEST = [{"latestRevision": True, "percent": 100}]


def pinned(revision: str) -> list[dict[str, Any]]:
    """All traffic to one Knative Revision, whatever the template's latest is."""
    return [{"revisionName": revision, "percent": 100}]


def split(shares: dict[str, int], tags: dict[str, str]) -> list[dict[str, Any]]:
    """`spec.traffic` for Knative Revisions by name: each share, and each tag as a target of
    its own (0% where the revision has no share, or a second tag)."""
    targets: list[dict[str, Any]] = [{"revisionName": rev, "percent": pct} for rev, pct in shares.items()]
    for tag, rev in sorted(tags.items()):
        untagged = next((t for t in targets if t["revisionName"] == rev and "tag" not in t), None)
        if untagged is not None:
            untagged["tag"] = tag
        else:
            targets.append({"revisionName": rev, "percent": 0, "tag": tag})
    return targets


def service(
    spec: FunctionSpec, target: Target, traffic: list[dict[str, Any]] | None = None, revision_template: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Service; `revision_template` keeps a template already on the cluster (a rollback
    moves traffic without creating a revision)."""
    body = revision_template or template(spec, target)
    name = body["metadata"]["name"]
    meta: dict[str, Any] = {
        "name": spec.name,
        "namespace": target.namespace,
        "labels": labels(spec, name),
        "annotations": {"lepton.dev/artifact": target.digest},
    }
    if not spec.public:
        meta["labels"]["networking.knative.dev/visibility"] = "cluster-local"
    return {**SERVICE_API, "metadata": meta, "spec": {"template": body, "traffic": traffic or LATEST}}


def secret(function: str, target: Target, tokens: dict[str, str], revision: str) -> dict[str, Any]:
    """The function's credentials: the platform's URL and the tokens of the revisions that
    may run. Values go under `data` (server-side apply tracks `data` keys, not `stringData`)."""
    values = {URL_KEY: target.platform_url, **tokens}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(function),
            "namespace": target.namespace,
            "labels": {**MANAGED_BY, "lepton.dev/function": function, "lepton.dev/revision": revision},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(values.items())},
    }


def _ref(name: str) -> dict[str, Any]:
    return {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": name}}


def delivery(policy: Delivery, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "retry": policy.retry,
        "backoffPolicy": policy.backoff,
        "backoffDelay": iso_duration(policy.delay, f"{where}.delay"),
    }
    if policy.timeout:
        out["timeout"] = iso_duration(policy.timeout, f"{where}.timeout")
    if policy.dead_letter:
        out["deadLetterSink"] = _ref(policy.dead_letter)
    return out


def _short_id(function: str, trigger: Any, broker: str) -> str:
    """Trigger names cover the Broker: `spec.broker` is immutable, so another Broker must
    mean another Trigger, not an update Knative refuses. The whole function name is in the
    hash too: two long names with one prefix keep Triggers of their own."""
    body = {"function": function, "trigger": trigger.model_dump(mode="json"), "broker": broker}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:8]


def _ping_payload(spec: FunctionSpec, index: int, data: Any) -> dict[str, Any]:
    """PingSource `data` is text; Knative requires it to be a JSON object when the content
    type says JSON. Objects go as JSON, strings as text, anything else is refused."""
    if isinstance(data, dict):
        return {"contentType": "application/json", "data": json.dumps(data, sort_keys=True)}
    if isinstance(data, str):
        return {"contentType": "text/plain", "data": data}
    raise RenderError(
        f"function {spec.name!r}: triggers[{index}] on_cron data: Knative's PingSource sends a JSON object "
        f"or text, not {type(data).__name__} {data!r}; wrap it in a dict"
    )


def trigger_objects(spec: FunctionSpec, target: Target, revision: str) -> list[dict[str, Any]]:
    out = []
    for index, trig in enumerate(spec.triggers):
        name = f"{spec.name[:52]}-{_short_id(spec.name, trig, target.broker)}"
        meta = {"name": name, "namespace": target.namespace, "labels": labels(spec, revision)}
        where = f"function {spec.name!r}: triggers[{index}]"
        if isinstance(trig, CronTrigger):
            source: dict[str, Any] = {"schedule": trig.schedule, "timezone": trig.timezone, "sink": _ref(spec.name)}
            if trig.data is not None:
                source.update(_ping_payload(spec, index, trig.data))
            out.append({"apiVersion": "sources.knative.dev/v1", "kind": "PingSource", "metadata": meta, "spec": source})
            continue
        body: dict[str, Any] = {"broker": target.broker, "subscriber": _ref(spec.name)}
        if isinstance(trig, BucketTrigger):
            body["filters"] = trig.as_filters()
            body["delivery"] = delivery(Delivery(), f"{where} delivery")
        elif isinstance(trig, EventTrigger):
            if trig.filters:
                # With `filters` set Knative ignores `filter`: fold exact attributes into filters.
                exact = [{"exact": dict(trig.attributes)}] if trig.attributes else []
                body["filters"] = exact + [dict(f) for f in trig.filters]
            elif trig.attributes:
                body["filter"] = {"attributes": dict(trig.attributes)}
            body["delivery"] = delivery(trig.delivery, f"{where} delivery")
        out.append({"apiVersion": "eventing.knative.dev/v1", "kind": "Trigger", "metadata": meta, "spec": body})
    return out


def render(spec: FunctionSpec, target: Target) -> list[dict[str, Any]]:
    """The Service first, then its Triggers and PingSources (they refer to it). The Secret is
    the platform's to write: only it holds the tokens."""
    svc = service(spec, target)
    return [svc, *trigger_objects(spec, target, svc["spec"]["template"]["metadata"]["name"])]
