"""Traffic rules (traffic.py): what is refused, what a canary deploy does, and how requests
are picked by weight."""

from __future__ import annotations

import random

import pytest

from lepton_platform.traffic import InvalidTraffic, Routes, Traffic, validate

READY = ["fn-00001", "fn-00002", "fn-00003"]


def test_shares_must_be_whole_percents_of_ready_revisions_adding_up_to_100():
    assert validate("fn", {"fn-00001": 90, "fn-00002": 10}, {}, READY) == Traffic({"fn-00001": 90, "fn-00002": 10})
    assert validate("fn", {"fn-00001": 100, "fn-00002": 0}, {}, READY).split == {"fn-00001": 100}  # 0% leaves the split
    for split, words in [
        ({"fn-00001": 90, "fn-00002": 20}, "add up to 110%"),
        ({"fn-00001": 50}, "add up to 50%"),
        ({}, "at least one revision"),
        ({"fn-00009": 100}, "no ready revision 'fn-00009'"),
        ({"fn-00001": 101}, "whole percent"),
        ({"fn-00001": -1, "fn-00002": 101}, "whole percent"),
        ({"fn-00001": 50.5, "fn-00002": 49.5}, "whole percent"),
        ({"fn-00001": True}, "whole percent"),
    ]:
        with pytest.raises(InvalidTraffic, match=words.replace("(", r"\(")):
            validate("fn", split, {}, READY)


def test_tags_are_dns_labels_naming_ready_revisions():
    assert validate("fn", {"fn-00001": 100}, {"canary": "fn-00002", "v-2": "fn-00002"}, READY).tags_of("fn-00002") == ["canary", "v-2"]
    for tag, rev in [("Canary", "fn-00002"), ("2x", "fn-00002"), ("a_b", "fn-00002"), ("x" * 40, "fn-00002"), ("ok", "fn-00009")]:
        with pytest.raises(InvalidTraffic):
            validate("fn", {"fn-00001": 100}, {tag: rev}, READY)


def test_main_is_the_largest_share_and_a_canary_takes_from_it():
    traffic = Traffic({"fn-00001": 90, "fn-00002": 10}, {"old": "fn-00001"})
    assert traffic.main == "fn-00001" and not traffic.simple
    assert Traffic({"fn-00001": 50, "fn-00002": 50}).main == "fn-00002"  # equal shares: the newest
    canary = traffic.with_canary("fn-00003", 20, "canary")
    assert canary.split == {"fn-00001": 80, "fn-00003": 20} and canary.tags == {"old": "fn-00001", "canary": "fn-00003"}
    dark = Traffic.single("fn-00001").with_canary("fn-00002", 0, "canary")
    assert dark.split == {"fn-00001": 100} and dark.revisions == ["fn-00001", "fn-00002"]
    assert Traffic.single("fn-00001").with_canary("fn-00002", 100, None).simple


def test_routes_pick_by_weight_and_by_tag():
    random.seed(7)
    routes = Routes(Traffic({"a": 70, "b": 30}, {"beta": "b"}), {"a": "A", "b": "B"})
    picks = [routes.pick() for _ in range(10_000)]
    assert 0.68 < picks.count("A") / len(picks) < 0.72
    assert routes.pick("beta") == "B" and routes.pick("nope") is None
    unweighted = Routes(Traffic({"a": 70, "b": 30}), {"a": "A"}, weighted=False)
    assert {unweighted.pick() for _ in range(100)} == {"A"}
