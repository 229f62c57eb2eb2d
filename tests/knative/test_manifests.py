"""Rendering, property-style: random specs over every option in contract 1 land in the right
Knative field and pass schema and rule validation; hand-broken objects are caught by name."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest

import lepton
from lepton_knative.manifests import (
    RenderError,
    Target,
    iso_duration,
    pinned,
    render,
    secret,
    service,
    split,
    token_key,
    user_secret,
    user_secret_name,
)
from lepton_knative.validation import ManifestError, ensure_valid, problems

TARGET = Target(
    namespace="ml",
    broker="events",
    image="registry.example/lepton:1",
    digest="sha256:" + "ab" * 32,
    platform_url="http://lepton-platform.ml.svc:8765",
    revision="fn-00007",
)


def random_function(rng: random.Random, i: int) -> lepton.Function:
    triggers = []
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["event", "cron", "bucket"])
        if kind == "event":
            delivery = lepton.Delivery(
                retry=rng.randint(0, 10),
                backoff=rng.choice(["linear", "exponential"]),
                delay=rng.choice([0.1, 0.2, 1.5, 30]),
                timeout=rng.choice([None, 2.5, 60]),
                dead_letter=rng.choice([None, "sink-fn"]),
            )
            filters = rng.choice(
                [
                    None,
                    [{"prefix": {"type": "com.example."}}],
                    [{"any": [{"exact": {"region": "eu"}}, {"not": {"suffix": {"subject": ".tmp"}}}]}],
                ]
            )
            attrs = rng.choice([{}, {"source": "/shop"}, {"region": "eu"}])
            triggers.append(lepton.on_event(rng.choice([None, "com.example.order"]), filters=filters, delivery=delivery, **attrs))
        elif kind == "cron":
            triggers.append(
                lepton.on_cron(
                    rng.choice(["*/5 * * * *", "0 3 * * 1-5"]),
                    timezone=rng.choice(["UTC", "Europe/Paris"]),
                    data=rng.choice([None, {"k": 1}, "tick"]),
                )
            )
        else:
            triggers.append(
                lepton.on_bucket(
                    "images",
                    events=rng.choice([["created"], ["created", "deleted"]]),
                    prefix=rng.choice(["", "in/"]),
                    suffix=rng.choice(["", ".png"]),
                )
            )

    def handler(event: lepton.CloudEvent) -> None:
        return None

    return lepton.function(
        name=f"fn-{i}",
        cpu=rng.choice(["250m", "1", "2"]),
        memory=rng.choice(["256Mi", "1Gi"]),
        gpu=rng.choice([0, 0, 1, 2]),
        min_scale=(low := rng.randint(0, 2)),
        max_scale=rng.randint(max(low, 1), 20),
        concurrency=(cc := rng.choice([0, 1, 8, 100])),
        target=rng.choice([t for t in (None, 0.5, 3, 50) if t is None or not cc or t <= cc]),
        scale_down_after=rng.choice([1, 30, 60, 600, 3600]),
        timeout=rng.choice([0.5, 30, 300, 599.5]),
        buckets=rng.choice([[], ["images"], ["images", "predictions"]]),
        env=rng.choice([{}, {"MODE": "fast", "B": "2"}]),
        secrets=rng.choice([[], ["HF_TOKEN"]]),
        public=rng.choice([True, False]),
        triggers=triggers,
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
    # Knative's effective target is target x utilization: the embedded autoscaler's target, 0.7 applied once.
    effective = float(notes["autoscaling.knative.dev/target"]) * float(notes["autoscaling.knative.dev/target-utilization-percentage"]) / 100
    expected = spec.target or (spec.concurrency * 0.7 if spec.concurrency else spec.autoscale_target)
    assert effective == pytest.approx(expected)
    assert notes["autoscaling.knative.dev/scale-to-zero-pod-retention-period"] == f"{math.ceil(spec.scale_down_after)}s"
    assert "autoscaling.knative.dev/window" not in notes
    assert notes["autoscaling.knative.dev/class"] == "kpa.autoscaling.knative.dev"
    assert pod["containerConcurrency"] == spec.concurrency
    assert pod["timeoutSeconds"] == math.ceil(spec.timeout)
    assert container["image"] == TARGET.image
    assert container["resources"]["requests"] == {"cpu": spec.cpu, "memory": spec.memory}
    assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(spec.gpu) if spec.gpu else None)
    assert container["readinessProbe"]["httpGet"]["path"] == "/_lepton/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/_lepton/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/_lepton/readyz"
    assert container["startupProbe"]["periodSeconds"] * container["startupProbe"]["failureThreshold"] >= 600
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["LEPTON_ARTIFACT_DIGEST"] == TARGET.digest and env["LEPTON_FUNCTION"] == spec.name
    assert env["LEPTON_URL"] == {"secretKeyRef": {"name": f"lepton-fn-{spec.name}", "key": "url"}}
    assert env["LEPTON_TOKEN"] == {"secretKeyRef": {"name": f"lepton-fn-{spec.name}", "key": token_key("fn-00007")}}
    assert {k: env[k] for k in spec.env} == spec.env
    assert not any(name.startswith(("AWS_", "LEPTON_S3")) for name in env), "pods hold no S3 credentials"
    assert "envFrom" not in container, "secrets are named one by one, never a whole Secret's keys"
    for name in spec.secrets:  # HF_TOKEN is key HF_TOKEN of the Secret `lepton secret set` writes
        assert env[name] == {"secretKeyRef": {"name": f"lepton-secret-{name.lower().replace('_', '-')}", "key": name}}
    assert svc["spec"]["traffic"] == [{"latestRevision": True, "percent": 100}]
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
            if isinstance(trig.data, dict):
                assert obj["spec"]["contentType"] == "application/json" and json.loads(obj["spec"]["data"]) == trig.data
            else:
                assert obj["spec"].get("data") == trig.data
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
        assert d["backoffDelay"] == iso_duration(trig.delivery.delay, "delay")
        assert d.get("timeout") == (iso_duration(trig.delivery.timeout, "timeout") if trig.delivery.timeout else None)
        assert d.get("deadLetterSink", {}).get("ref", {}).get("name") == trig.delivery.dead_letter


def revision(spec, target=TARGET) -> str:
    return render(spec, target)[0]["spec"]["template"]["metadata"]["name"]


def test_rendering_is_deterministic_and_revision_names_follow_every_template_change():
    fn = random_function(random.Random(1), 1)
    assert render(fn.spec, TARGET) == render(fn.spec, TARGET)
    names = {revision(fn.spec)}
    for change in ({"digest": "sha256:" + "cd" * 32}, {"image": "registry.example/lepton:2"}, {"revision": "fn-00008"}):
        names.add(revision(fn.spec, Target(**{**TARGET.__dict__, **change})))
    for option in ({"env": {"X": "1"}}, {"memory": "3Gi"}, {"timeout": 17}):
        names.add(revision(fn.spec.model_copy(update=option)))
    assert len(names) == 7, "each template change gets a new name (Knative refuses a change under an old name)"
    # (A platform revision retried after a failure is a new one: a new name, not the failed Revision again.)
    # The platform URL lives in the Secret, so moving the platform creates no revision.
    assert revision(fn.spec, Target(**{**TARGET.__dict__, "platform_url": "http://elsewhere:1"})) == revision(fn.spec)


def test_trigger_names_cover_the_broker_which_knative_cannot_change():
    @lepton.function(name="svc", triggers=[lepton.on_event("t"), lepton.on_cron("*/5 * * * *")])
    def svc(event: lepton.CloudEvent) -> None:
        return None

    one = [o["metadata"]["name"] for o in render(svc.spec, TARGET)[1:]]
    other = [o["metadata"]["name"] for o in render(svc.spec, Target(**{**TARGET.__dict__, "broker": "other"}))[1:]]
    assert one[0] != other[0] and all(len(n) <= 63 for n in one + other)


def test_durations_keep_one_decimal_like_knative_or_are_refused():
    assert iso_duration(0.2, "d") == "PT0.2S" and iso_duration(30, "d") == "PT30S" and iso_duration(1.5, "d") == "PT1.5S"
    for bad in (0.05, 1.25):
        with pytest.raises(RenderError, match="one decimal of a second"):
            iso_duration(bad, "function 'f': triggers[0] delivery.delay")

    @lepton.function(name="fast", triggers=[lepton.on_event("t", delivery=lepton.Delivery(delay=0.05))])
    def fast(event: lepton.CloudEvent) -> None:
        return None

    with pytest.raises(RenderError) as caught:
        render(fast.spec, TARGET)
    assert str(caught.value).startswith("function 'fast': triggers[0] delivery.delay: 0.05 s cannot be said to Knative")


def test_cron_data_must_be_an_object_or_text():
    @lepton.function(name="ticks", triggers=[lepton.on_cron("* * * * *", data=[1, 2])])
    def ticks(event: lepton.CloudEvent) -> None:
        return None

    with pytest.raises(RenderError, match=r"function 'ticks': triggers\[0\] on_cron data: .* not list \[1, 2\]; wrap it in a dict"):
        render(ticks.spec, TARGET)


def test_secret_carries_the_url_and_one_token_per_revision_and_traffic_can_be_pinned():
    fn = random_function(random.Random(2), 2)
    obj = secret(fn.spec.name, TARGET, {"token-abc": "rev.fn-2-00001.x"}, "fn-2-1234abcd")
    assert obj["metadata"]["name"] == "lepton-fn-fn-2" and obj["type"] == "Opaque" and "stringData" not in obj
    assert obj["data"] == {"token-abc": "cmV2LmZuLTItMDAwMDEueA==", "url": "aHR0cDovL2xlcHRvbi1wbGF0Zm9ybS5tbC5zdmM6ODc2NQ=="}
    assert pinned("fn-2-1234abcd") == [{"revisionName": "fn-2-1234abcd", "percent": 100}]
    assert service(fn.spec, TARGET, pinned("fn-2-1234abcd"))["spec"]["traffic"] == pinned("fn-2-1234abcd")


def test_a_split_with_tags_is_a_valid_spec_traffic_and_duplicate_tags_are_refused():
    fn = random_function(random.Random(3), 3)
    targets = split({"r1": 90, "r2": 10}, {"canary": "r2", "beta": "r2", "old": "r0"})
    assert targets == [
        {"revisionName": "r1", "percent": 90},
        {"revisionName": "r2", "percent": 10, "tag": "beta"},
        {"revisionName": "r2", "percent": 0, "tag": "canary"},
        {"revisionName": "r0", "percent": 0, "tag": "old"},
    ]
    ensure_valid([service(fn.spec, TARGET, targets)])  # the CRD schema and the webhook's traffic rules
    twice = [*targets, {"revisionName": "r1", "percent": 0, "tag": "beta"}]
    with pytest.raises(ManifestError, match="beta"):
        ensure_valid([service(fn.spec, TARGET, twice)])
    off = [{**targets[0], "percent": 80}, *targets[1:]]
    with pytest.raises(ManifestError, match="sum to 90"):
        ensure_valid([service(fn.spec, TARGET, off)])


def test_a_lepton_secret_is_a_secret_of_its_own_named_by_its_lower_case_form():
    obj = user_secret("HF_TOKEN", "hf_abc", "ml")
    assert obj["metadata"]["name"] == user_secret_name("HF_TOKEN") == "lepton-secret-hf-token"
    assert obj["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "lepton", "lepton.dev/secret": "hf-token"}
    assert "lepton.dev/function" not in obj["metadata"]["labels"], "a function's prune must never select it"
    assert obj["data"] == {"HF_TOKEN": "aGZfYWJj"} and obj["type"] == "Opaque" and "stringData" not in obj
    longest = "A" + "_B" * 49 + "C"
    labels = user_secret(longest, "", "ml")["metadata"]["labels"]
    assert len(labels["lepton.dev/secret"]) <= 63 and labels["lepton.dev/secret"][-1].isalnum()
    assert user_secret_name(longest) == "lepton-secret-a" + "-b" * 49 + "c"


def broken(mutate, kind: str = "Service"):
    @lepton.function(
        name="svc",
        triggers=[lepton.on_event("t", delivery=lepton.Delivery(dead_letter="dl")), lepton.on_cron("*/5 * * * *", data={"a": 1})],
    )
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


@pytest.mark.parametrize(
    "kind, mutate, expected",
    [
        (
            "Service",
            _set("spec.template.spec.containerConcurency", 3),
            "spec.template.spec: unknown field ('containerConcurency' was unexpected)",
        ),
        (
            "Service",
            _set("spec.template.spec.containerConcurrency", "8"),
            "spec.template.spec.containerConcurrency: '8' is not of type 'integer'",
        ),
        ("Service", _set("spec.template.spec.containerConcurrency", 5000), "containerConcurrency: 5000 is outside 0..1000"),
        ("Service", _set("spec.template.spec.timeoutSeconds", 3600), "timeoutSeconds: 3600 is outside 1..600"),
        (
            "Service",
            _set("spec.template.spec.containers.0.ports.0.containerPort", "http"),
            "containerPort: 'http' is not of type 'integer'",
        ),
        (
            "Service",
            _set("spec.template.spec.containers.0.resources.limits.memory", "lots"),
            "resources.limits.memory: 'lots' is not a Kubernetes quantity",
        ),
        (
            "Service",
            _set("spec.template.spec.containers.0.readinessProbe.httpGet.path", "readyz"),
            "readinessProbe.httpGet.path: 'readyz' must start with '/'",
        ),
        (
            "Service",
            lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/window": "2s"}),
            "autoscaling.knative.dev/window]: '2s' is not a duration between 6s and 1h",
        ),
        (
            "Service",
            lambda o: o["spec"]["template"]["metadata"]["annotations"].update(
                {"autoscaling.knative.dev/min-scale": "5", "autoscaling.knative.dev/max-scale": "2"}
            ),
            "max-scale]: 2 is below min-scale 5",
        ),
        (
            "Service",
            lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/min-scale": "-1"}),
            "min-scale]: '-1' is not a non-negative integer",
        ),
        (
            "Service",
            lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/target": "0"}),
            "target]: 0 is below 0.01",
        ),
        (
            "Service",
            lambda o: o["spec"]["template"]["metadata"]["annotations"].update({"autoscaling.knative.dev/class": "fast"}),
            "class]: 'fast' is not one of",
        ),
        ("Service", _set("metadata.name", "My_Service"), "metadata.name: 'My_Service' is not a DNS-1123 label"),
        (
            "Service",
            _set("spec.template.metadata.name", "other-rev"),
            "spec.template.metadata.name: 'other-rev' must be a DNS-1123 label starting with 'svc-'",
        ),
        ("Service", lambda o: o["metadata"]["labels"].update({"team": "a b"}), "metadata.labels[team]: 'a b' is not a valid label value"),
        (
            "Trigger",
            _set("spec.delivery.backoffPolicy", "quadratic"),
            "spec.delivery.backoffPolicy: 'quadratic' is not 'linear' or 'exponential'",
        ),
        ("Trigger", _set("spec.delivery.backoffDelay", "0.2s"), "spec.delivery.backoffDelay: '0.2s' is not an ISO-8601 duration"),
        ("Trigger", _set("spec.delivery.retry", "3"), "spec.delivery.retry: '3' is not of type 'integer'"),
        ("Trigger", _set("spec.filter", {"attributes": {"Type": "t"}}), "spec.filter.attributes[Type]: attribute names must match"),
        (
            "Trigger",
            _set("spec.filters", [{"exact": {"type": "a"}, "prefix": {"type": "b"}}]),
            "spec.filters.0: each filter needs exactly one dialect",
        ),
        ("Trigger", _set("spec.filters", [{"regex": {"type": "a"}}]), "spec.filters.0: unknown filter dialect 'regex'"),
        ("Trigger", _set("spec.filters", [{"not": {"prefix": {"type": ""}}}]), "spec.filters.0.not.prefix[type]: needs a non-empty string"),
        ("Trigger", _set("spec.subscriber", {}), "spec.subscriber: needs a ref or a uri"),
        ("Trigger", _set("spec.broker", KeyError), "spec.broker: required"),
        ("PingSource", _set("spec.dataBase64", "eyJhIjoxfQ=="), "spec: data and dataBase64 are mutually exclusive"),
        ("PingSource", _set("spec.schedule", "*/5 * * * * *"), "spec.schedule: '*/5 * * * * *' is not a 5-field cron schedule"),
        ("PingSource", _set("spec.timezone", "Mars/Olympus"), "spec.timezone: 'Mars/Olympus' is not an IANA time zone"),
        ("PingSource", _set("spec.sink", {"ref": {"kind": "Service"}}), "spec.sink.ref.name: required"),
    ],
)
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


def test_a_retention_knative_cannot_keep_is_refused():
    @lepton.function(name="lazy", scale_down_after=7200)
    def lazy() -> None:
        return None

    with pytest.raises(RenderError, match=r"^function 'lazy': scale_down_after 7200 s: Knative keeps a last pod at most 3600 s"):
        render(lazy.spec, TARGET)
