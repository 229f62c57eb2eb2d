"""The broker's trigger index: it changes how many triggers an event is tested against,
never which ones match (checked against testing every trigger in turn)."""

from __future__ import annotations

import random

from lepton_platform.broker.index import TriggerIndex, required_value
from lepton_platform.broker.triggers import Trigger

TYPES = ["order.created", "order.paid", "user.signup", "x"]
SOURCES = ["/orders", "/users", "/buckets/raw"]
SUBJECTS = ["a.json", "b.png", "order-1.json"]


def random_filter(rng: random.Random, depth: int = 0) -> dict:
    dialect = rng.choice(["exact", "prefix", "suffix", "all", "any", "not"] if depth < 2 else ["exact", "prefix", "suffix"])
    name = rng.choice(["type", "source", "subject", "region"])
    value = rng.choice({"type": TYPES, "source": SOURCES, "subject": SUBJECTS, "region": ["eu", "us"]}[name])
    if dialect == "exact":
        return {"exact": {name: value}}
    if dialect == "prefix":
        return {"prefix": {name: value[:2]}}
    if dialect == "suffix":
        return {"suffix": {name: value[-3:]}}
    if dialect == "not":
        return {"not": random_filter(rng, depth + 1)}
    return {dialect: [random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}


def random_trigger(rng: random.Random, n: int) -> Trigger:
    attributes = {}
    for name, values in (("type", TYPES), ("source", SOURCES), ("region", ["eu", "us", ""])):
        if rng.random() < 0.4:
            attributes[name] = rng.choice(values + [""])
    filters = tuple(random_filter(rng) for _ in range(rng.choice([0, 0, 1, 2])))
    kind = rng.choice(["event"] * 8 + ["bucket", "cron", "dead-letter"])
    return Trigger(f"t{n}", "fn", kind=kind, attributes=attributes, filters=filters)


def random_event(rng: random.Random) -> dict[str, str]:
    event = {"specversion": "1.0", "id": "1", "type": rng.choice(TYPES), "source": rng.choice(SOURCES), "subject": rng.choice(SUBJECTS)}
    if rng.random() < 0.5:
        event["region"] = rng.choice(["eu", "us"])
    return event


def test_the_index_matches_exactly_what_testing_every_trigger_matches():
    rng = random.Random(1234)
    triggers = [random_trigger(rng, n) for n in range(400)]
    index = TriggerIndex(triggers)
    assert index.by_type and index.by_source and index.rest  # every path is exercised
    for _ in range(2000):
        event = random_event(rng)
        assert sorted(index.matching(event)) == sorted(t.id for t in triggers if t.matches(event))


def test_a_thousand_triggers_on_their_own_types_are_not_tested_one_by_one():
    triggers = [Trigger(f"t{n}", f"fn-{n}", attributes={"type": f"app.{n}"}) for n in range(1000)]
    triggers.append(Trigger("by-source", "fn", filters=({"exact": {"source": "/s3"}},)))
    index = TriggerIndex(triggers)
    assert len(index.by_type) == 1000 and list(index.by_source) == ["/s3"] and index.rest == []
    assert index.matching({"type": "app.7", "source": "/elsewhere"}) == ["t7"]
    assert index.matching({"type": "app.none", "source": "/s3"}) == ["by-source"]


def test_what_fixes_an_attribute_and_what_does_not():
    def trigger(attributes: dict | None = None, *filters: dict) -> Trigger:
        return Trigger("t", "fn", attributes=attributes or {}, filters=filters)

    assert required_value(trigger({"type": "a"}), "type") == "a"
    assert required_value(trigger({"type": ""}), "type") is None  # present with any value
    assert required_value(trigger({}, {"exact": {"type": "b"}}), "type") == "b"
    assert required_value(trigger({}, {"all": [{"prefix": {"source": "/"}}, {"exact": {"type": "c"}}]}), "type") == "c"
    assert required_value(trigger({}, {"any": [{"exact": {"type": "d"}}]}), "type") is None
    assert required_value(trigger({}, {"not": {"exact": {"type": "e"}}}), "type") is None
    assert required_value(trigger({}, {"prefix": {"type": "f"}}), "type") is None
