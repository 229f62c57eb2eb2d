"""Decoration-time validation: every bad option is a one-line SpecError naming it."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

import lepton
from lepton import SpecError


def test_defaults_and_local_call():
    @lepton.function
    def make_thumbnail(size: int = 64) -> int:
        return size * 2

    assert make_thumbnail(3) == 6
    spec = make_thumbnail.spec
    assert spec.name == "make-thumbnail"
    assert (spec.min_scale, spec.max_scale, spec.scale_down_after, spec.timeout) == (0, 10, 60, 300)
    assert spec.handler.kind == "json" and spec.handler.input_schema["properties"]["size"]["default"] == 64
    assert json.loads(spec.model_dump_json())["name"] == "make-thumbnail"


def test_every_option_is_recorded_and_round_trips():
    @lepton.function(
        name="classify",
        cpu="500m",
        memory="2Gi",
        gpu=1,
        min_scale=1,
        max_scale=3,
        concurrency=8,
        target=4,
        scale_down_after=30,
        timeout=20,
        buckets=["images", "predictions"],
        env={"MODE": "fast"},
        secrets=["HF_TOKEN"],
        requirements=["torch>=2"],
        public=True,
        triggers=[
            lepton.on_event(
                type="com.example.order", region="eu", delivery=lepton.Delivery(retry=5, backoff="linear", delay=0.5, dead_letter="failed")
            ),
            lepton.on_cron("*/5 * * * *", data={"k": 1}, timezone="Europe/Paris"),
            lepton.on_bucket("images", events=["created", "deleted"], prefix="in/", suffix=".png"),
        ],
    )
    def classify(image: bytes) -> str:
        return "cat"

    spec = classify.spec
    again = lepton.FunctionSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    event, cron, bucket = spec.triggers
    assert event.attributes == {"type": "com.example.order", "region": "eu"}
    assert event.delivery.backoff_seconds(3) == 1.5
    assert cron.timezone == "Europe/Paris" and cron.data == {"k": 1}
    assert bucket.event_types() == ["dev.lepton.bucket.object.created", "dev.lepton.bucket.object.deleted"]


@pytest.mark.parametrize(
    "options, message",
    [
        ({"name": "Bad_Name"}, "not a valid function name"),
        ({"name": "x" * 64}, "not a valid function name"),
        ({"min_scale": 3, "max_scale": 1}, "min_scale (3) must not exceed max_scale (1)"),
        ({"timeout": -1}, "timeout"),
        ({"max_scale": 0}, "max_scale"),
        ({"cpu": "lots"}, "not a CPU quantity"),
        ({"memory": "1 GB"}, "not a memory quantity"),
        ({"buckets": ["Images"]}, "not a valid bucket name"),
        ({"env": {"1BAD": "x"}}, "not a valid environment variable name"),
        ({"env": {"LEPTON_TOKEN": "x"}}, "reserved"),
        ({"requirements": ["torch=="]}, "not a pip requirement"),
        ({"concurrency": 2, "target": 5}, "target (5) must not exceed concurrency (2)"),
        ({"triggers": ["every minute"]}, "unknown trigger"),
        ({"batch": {"max_size": 4}}, "batch= takes lepton.Batch"),
        ({"max_scael": 3}, "@lepton.function has no option max_scael=; did you mean max_scale=?"),
        ({"zzz": 1}, "has no option zzz=; the options are name, cpu, memory"),
    ],
)
def test_bad_options_are_rejected_at_decoration(options, message):
    with pytest.raises(SpecError, match=None) as info:
        lepton.function(**options)(lambda_target)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def lambda_target(x: int) -> int:
    return x


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: lepton.on_cron("every 5 minutes"), "not a valid cron expression"),
        (lambda: lepton.on_cron("* * * * *", timezone="Mars/Olympus"), "not an IANA time zone"),
        (lambda: lepton.on_bucket("images", events=["updated"]), "events"),
        (lambda: lepton.on_bucket("no"), "not a valid bucket name"),
        (lambda: lepton.on_event(type="t", **{"Bad-Attr": "x"}), "not a CloudEvents attribute name"),
        (lambda: lepton.on_event(filters=[{"prefix": {"type": "a"}, "suffix": {"type": "b"}}]), "exactly one dialect"),
        (lambda: lepton.on_event(filters=[{"regex": {"type": "a"}}]), "unknown filter dialect"),
        (lambda: lepton.Delivery(backoff="random"), "backoff"),
        (lambda: lepton.Delivery(retry=-1), "retry"),
        (lambda: lepton.Delivery(dead_letter="Not A Function"), "not a function name"),
        (lambda: lepton.Batch(max_size=0), "max_size"),
    ],
)
def test_bad_triggers_and_policies(build, message):
    with pytest.raises(SpecError) as info:
        build()
    assert message in str(info.value)


class Point(BaseModel):
    x: int


def test_handler_kinds_come_from_the_signature():
    @lepton.function
    def by_model(p: Point) -> Point:
        return p

    @lepton.function
    def on_evt(event: lepton.CloudEvent) -> None: ...

    @lepton.function
    def gen(n: int):
        yield n

    @lepton.function(batch=lepton.Batch(max_size=4))
    def batched(xs: list[int]) -> list[int]:
        return xs

    @lepton.function
    class Model:
        def setup(self) -> None:
            self.k = 2

        def __call__(self, x: int) -> int:
            return self.k * x

    assert [f.signature.kind for f in (by_model, on_evt, gen, batched, Model)] == ["json", "event", "stream", "batch", "json"]
    assert Model(4) == 8  # the class runs locally: set up once, then called
    assert Model.spec.handler.is_class


def test_signature_mistakes_are_explained():
    with pytest.raises(SpecError, match="declare every parameter as a list"):

        @lepton.function(batch=lepton.Batch())
        def not_lists(x: int) -> int:
            return x

    with pytest.raises(SpecError, match="exactly one parameter"):

        @lepton.function
        def two(event: lepton.CloudEvent, extra: int) -> None: ...

    with pytest.raises(SpecError, match="named parameter"):

        @lepton.function
        def star(*args: int) -> None: ...

    with pytest.raises(SpecError, match="decorated twice"):
        lepton.function(lepton.function(lambda_target))


def test_a_misspelt_asgi_option_names_the_one_meant():
    with pytest.raises(SpecError, match=r"@lepton.asgi has no option scale_down_afer=; did you mean scale_down_after=\?"):
        lepton.asgi(lambda_target, scale_down_afer=5)
