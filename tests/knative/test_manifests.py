"""Rendering, property-style: random specs over every option in contract 1 land in the right
Knative field and pass schema and rule validation; hand-broken objects are caught by name."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest

import lepton
from lepton_knative.manifests import Target, iso_duration, render
from lepton_knative.validation import ManifestError, ensure_valid, problems

TARGET = Target(namespace="ml", broker="events", image="registry.example/lepton:1", artifact_url="s3://art/a.tar.gz", digest="sha256:" + "ab" * 32)


def random_function(rng: random.Random, i: int) -> lepton.Function:
    triggers = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["event", "cron", "bucket"])
        if kind == "event":
            delivery = lepton.Delivery(retry=rng.randint(0, 10), backoff=rng.choice(["linear", "exponential"]),
                                       delay=rng.choice([0.05, 0.2, 1.5, 30]), timeout=rng.choice([None, 2.5, 60]),
                                       dead_letter=rng.choice([None, "sink-fn"]))
            filters = rng.choice([None, [{"prefix": {"type": "com.example."}}], [{"any": [{"exact": {"region": "eu"}}, {"not": {"suffix": {"subject": ".tmp"}}}]}]])
            attrs = rng.choice([{}, {"source": "/shop"}, {"region": "eu"}])
            triggers.append(lepton.on_event(rng.choice([None, "com.example.order"]), filters=filters, delivery=delivery, **attrs))
        elif kind == "cron":
            triggers.append(lepton.on_cron(rng.choice(["*/5 * * * *", "0 3 * * 1-5"]), timezone=rng.choice(["UTC", "Europe/Paris"]),
                                           data=rng.choice([None, {"k": 1}, [1, 2]])))
        else:
            triggers.append(lepton.on_bucket("images", events=rng.choice([["created"], ["created", "deleted"]]),
                                             prefix=rng.choice(["", "in/"]), suffix=rng.choice(["", ".png"])))

    def handler(event: lepton.CloudEvent) -> None:
        return None

    return lepton.function(
        name=f"fn-{i}", cpu=rng.choice(["250m", "1", "2"]), memory=rng.choice(["256Mi", "1Gi"]), gpu=rng.choice([0, 0, 1, 2]),
        min_scale=(low := rng.randint(0, 2)), max_scale=rng.randint(max(low, 1), 20), concurrency=(cc := rng.choice([0, 1, 8, 100])),
        target=rng.choice([t for t in (None, 0.5, 3, 50) if t is None or not cc or t <= cc]), scale_down_after=rng.choice([1, 30, 60, 600, 7200]), timeout=rng.choice([0.5, 30, 300, 599.5]),
        buckets=rng.choice([[], ["images"], ["images", "predictions"]]), env=rng.choice([{}, {"MODE": "fast", "B": "2"}]),
        secrets=rng.choice([[], ["hf-token"]]), public=rng.choice([True, False]), triggers=triggers,
    )(handler)


@pytest.mark.parametrize("seed", range(40))
def test_every_option_lands_in_the_right_field(seed):
    rng = random.Random(seed)
    fn = random_function(rng, seed)
    spec = fn.spec
    objects = render(spec, TARGET)
    ensure_valid(objects)

    svc = objects[0]
    template = svc["spec"]["template"]
    notes = template["metadata"]["annotations"]
    pod = template["spec"]
    container = pod["containers"][0]
    assert svc["metadata"]["namespace"] == "ml" and svc["metadata"]["name"] == spec.name
    assert notes["autoscaling.knative.dev/min-scale"] == str(spec.min_scale)
    assert notes["autoscaling.knative.dev/max-scale"] == str(spec.max_scale)
    assert float(notes["autoscaling.knative.dev/target"]) == pytest.approx(spec.autoscale_target)
    assert notes["autoscaling.knative.dev/window"] == f"{min(3600, max(6, math.ceil(spec.scale_down_after)))}s"
    assert notes["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert pod["containerConcurrency"] == spec.concurrency
    assert pod["timeoutSeconds"] == math.ceil(spec.timeout)
    assert container["image"] == TARGET.image
    assert container["resources"]["requests"] == {"cpu": spec.cpu, "memory": spec.memory}
    assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(spec.gpu) if spec.gpu else None)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" and container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LEPTON_ARTIFACT_URL"] == TARGET.artifact_url and env["LEPTON_ARTIFACT_DIGEST"] == TARGET.digest
    assert env["LEPTON_FUNCTION"] == spec.name and env["LEPTON_REVISION"] == template["metadata"]["name"]
    assert {k: env[k] for k in spec.env} == spec.env
    assert env.get("LEPTON_BUCKETS") == (",".join(spec.buckets) if spec.buckets else None)
    assert [s["secretRef"]["name"] for s in container["envFrom"]] == [f"lepton-{spec.name}", *spec.secrets]
    assert (svc["metadata"]["labels"].get("networking.knative.dev/visibility") == "cluster-local") is not spec.public
    for obj in objects:
        assert obj["metadata"]["labels"]["lepton.dev/function"] == spec.name
        assert obj["metadata"]["labels"]["lepton.dev/revision"] == template["metadata"]["name"]

    rest = objects[1:]
    assert len(rest) == len(spec.triggers)
    for trig, obj in zip(spec.triggers, rest):
        if trig.kind == "cron":
            assert obj["kind"] == "PingSource"
            assert obj["spec"]["schedule"] == trig.schedule and obj["spec"]["timezone"] == trig.timezone
            assert (json.loads(obj["spec"]["data"]) if "data" in obj["spec"] else None) == trig.data
            assert obj["spec"]["sink"]["ref"]["name"] == spec.name
            continue
        assert obj["kind"] == "Trigger" and obj["spec"]["broker"] == "events"
        assert obj["spec"]["subscriber"]["ref"] == {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": spec.name}
        if trig.kind == "bucket":
            assert obj["spec"]["filters"] == trig.as_filters()
            continue
        if trig.filters:
            expected = ([{"exact": dict(trig.attributes)}] if trig.attributes else []) + list(trig.filters)
            assert obj["spec"]["filters"] == expected and "filter" not in obj["spec"]
        elif trig.attributes:
            assert obj["spec"]["filter"] == {"attributes": dict(trig.attributes)}
        d = obj["spec"]["delivery"]
        assert d["retry"] == trig.delivery.retry and d["backoffPolicy"] == trig.delivery.backoff
        assert d["backoffDelay"] == iso_duration(trig.delivery.delay)
        assert d.get("timeout") == (iso_duration(trig.delivery.timeout) if trig.delivery.timeout else None)
        assert d.get("deadLetterSink", {}).get("ref", {}).get("name") == trig.delivery.dead_letter


def test_rendering_is_deterministic_and_revisions_follow_content():
    fn = random_function(random.Random(1), 1)
    assert render(fn.spec, TARGET) == render(fn.spec, TARGET)
    other = Target(**{**TARGET.__dict__, "digest": "sha256:" + "cd" * 32})
    assert render(fn.spec, TARGET)[0]["spec"]["template"]["metadata"]["name"] != render(fn.spec, other)[0]["spec"]["template"]["metadata"]["name"]
    assert iso_duration(0.2) == "PT0.2S" and iso_duration(30) == "PT30S" and iso_duration(1.25) == "PT1.25S"


def broken(mutate, kind: str = "Service"):
    @lepton.function(name="svc", triggers=[lepton.on_event("t", delivery=lepton.Delivery(dead_letter="dl")), lepton.on_cron("*/5 * * * *", data={"a": 1})])
    def svc(event: lepton.CloudEvent) -> None:
        return None

    objects = {o["kind"]: copy.deepcopy(o) for o in render(svc.spec, TARGET)}
    mutate(objects[kind])
    return problems(objects[kind])


def _set(path: str, value):
    def mutate(obj):
        node = obj
        *parents, last = path.split(".")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return mutate


@pytest.mark.parametrize("kind, mutate, expected", [
    ("Service", _set("spec.template.spec.containerConcurency", 3), "spec.template.spec: unknown field ('containerConcurency' was unexpected)"),
    ("Service", _set("spec.template.spec.containerConcurrency", "8"), "spec.template.spec.containerConcurrency: '8' is not of type 'integer'"),
    ("Service", _set("spec.template.spec.containerConcurrency", 5000), "containerConcurrency: 5000 is outside 0..1000"),
    ("Service", _set("spec.template.spec.timeoutSeconds", 3600), "timeoutSeconds: 3600 is outside 1..600"),
    ("Service", _set("spec.template.spec.containers.0.ports.0.containerPort", "http"), "containerPort: 'http' is not of type 'integer'"),
    ("Service", _set("spec.template.spec.containers.0.resources.limits.memory", "lots"), "resources.limits.memory: 'lots' is not a Kubernetes quantity"),
    ("Service", _set("spec.template.spec.containers.0.readinessProbe.httpGet.path", "readyz"), "readinessProbe.httpGet.path: 'readyz' must start with '/'"),
    ("Service", lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/window": "2s"}), "autoscaling.knative.dev/window]: '2s' is not a duration between 6s and 1h"),
    ("Service", lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": "5", "autoscaling.knative.dev/max-scale": "2"}), "max-scale]: 2 is below min-scale 5"),
    ("Service", lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": "-1"}), "min-scale]: '-1' is not a non-negative integer"),
    ("Service", lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/target": "0"}), "target]: 0 is below 0.01"),
    ("Service", lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/class": "fast"}), "class]: 'fast' is not one of"),
    ("Service", _set("metadata.name", "My_Service"), "metadata.name: 'My_Service' is not a DNS-1123 label"),
    ("Service", _set("spec.template.metadata.name", "other-rev"), "spec.template.metadata.name: 'other-rev' must be a DNS-1123 label starting with 'svc-'"),
    ("Service", lambda o: o["metadata"]["labels"].update({"team": "a b"}), "metadata.labels[team]: 'a b' is not a valid label value"),
    ("Trigger", _set("spec.delivery.backoffPolicy", "quadratic"), "spec.delivery.backoffPolicy: 'quadratic' is not 'linear' or 'exponential'"),
    ("Trigger", _set("spec.delivery.backoffDelay", "0.2s"), "spec.delivery.backoffDelay: '0.2s' is not an ISO-8601 duration"),
    ("Trigger", _set("spec.delivery.retry", "3"), "spec.delivery.retry: '3' is not of type 'integer'"),
    ("Trigger", _set("spec.filter", {"attributes": {"Type": "t"}}), "spec.filter.attributes[Type]: attribute names must match"),
    ("Trigger", _set("spec.filters", [{"exact": {"type": "a"}, "prefix": {"type": "b"}}]), "spec.filters.0: each filter needs exactly one dialect"),
    ("Trigger", _set("spec.filters", [{"regex": {"type": "a"}}]), "spec.filters.0: unknown filter dialect 'regex'"),
    ("Trigger", _set("spec.filters", [{"not": {"prefix": {"type": ""}}}]), "spec.filters.0.not.prefix[type]: needs a non-empty string"),
    ("Trigger", _set("spec.subscriber", {}), "spec.subscriber: needs a ref or a uri"),
    ("Trigger", _set("spec.broker", KeyError), "spec.broker: required"),
    ("PingSource", _set("spec.dataBase64", "eyJhIjoxfQ=="), "spec: data and dataBase64 are mutually exclusive"),
    ("PingSource", _set("spec.schedule", "*/5 * * * * *"), "spec.schedule: '*/5 * * * * *' is not a 5-field cron schedule"),
    ("PingSource", _set("spec.timezone", "Mars/Olympus"), "spec.timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("PingSource", _set("spec.sink", {"ref": {"kind": "Service"}}), "spec.sink.ref.name: required"),
])
def test_hand_broken_objects_are_caught_naming_the_field(kind, mutate, expected):
    found = broken(mutate, kind)
    assert any(expected in p for p in found), found
    assert all(p.startswith(f"{kind} ") for p in found)


def test_ensure_valid_reports_every_problem_on_one_line():
    @lepton.function(name="svc")
    def svc() -> None:
        return None

    obj = render(svc.spec, TARGET)[0]
    obj["spec"]["template"]["spec"]["containerConcurrency"] = -1
    obj["spec"]["template"]["spec"]["timeoutSeconds"] = 0
    with pytest.raises(ManifestError) as caught:
        ensure_valid([obj])
    assert "\n" not in str(caught.value) and "containerConcurrency" in str(caught.value) and "timeoutSeconds" in str(caught.value)
