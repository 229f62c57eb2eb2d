"""Knative filter semantics, table-driven: what each dialect matches and what it does not."""

from __future__ import annotations

import pytest

from lepton_platform.broker.filters import matches
from lepton_platform.broker.triggers import DEAD_LETTER, FORWARD, Trigger

EVENT = {
    "specversion": "1.0",
    "id": "1",
    "source": "/orders/eu",
    "type": "com.example.order.created",
    "subject": "order-42.json",
    "region": "eu",
}


@pytest.mark.parametrize(
    "attributes, filters, expected",
    [
        ({}, [], True),
        ({"type": "com.example.order.created"}, [], True),
        ({"type": "com.example.order"}, [], False),
        ({"region": "eu"}, [], True),
        ({"region": "us"}, [], False),
        ({"missing": "x"}, [], False),
        ({"region": ""}, [], True),
        ({"missing": ""}, [], False),
        ({"type": "com.example.order.created", "region": "us"}, [], False),
        ({}, [{"exact": {"type": "com.example.order.created"}}], True),
        ({}, [{"exact": {"type": "com.example.order.created", "region": "us"}}], False),
        ({}, [{"prefix": {"type": "com.example."}}], True),
        ({}, [{"prefix": {"type": "org.example."}}], False),
        ({}, [{"prefix": {"missing": "x"}}], False),
        ({}, [{"suffix": {"subject": ".json"}}], True),
        ({}, [{"suffix": {"subject": ".png"}}], False),
        ({}, [{"all": [{"prefix": {"type": "com."}}, {"exact": {"region": "eu"}}]}], True),
        ({}, [{"all": [{"prefix": {"type": "com."}}, {"exact": {"region": "us"}}]}], False),
        ({}, [{"any": [{"exact": {"region": "us"}}, {"exact": {"region": "eu"}}]}], True),
        ({}, [{"any": [{"exact": {"region": "us"}}, {"exact": {"region": "ap"}}]}], False),
        ({}, [{"not": {"exact": {"region": "us"}}}], True),
        ({}, [{"not": {"exact": {"region": "eu"}}}], False),
        ({}, [{"not": {"any": [{"suffix": {"subject": ".png"}}, {"prefix": {"source": "/billing"}}]}}], True),
        ({}, [{"prefix": {"type": "com."}}, {"suffix": {"subject": ".png"}}], False),
        ({"region": "eu"}, [{"prefix": {"source": "/orders/"}}], True),
        ({}, [{"cesql": "region = 'eu'"}], False),
    ],
)
def test_filter_semantics(attributes, filters, expected):
    assert matches(attributes, filters, EVENT) is expected


# What the table above leaves out: several attributes in one dialect, case, missing
# attributes under every dialect, deeper nesting, and dialects that are never evaluated.
@pytest.mark.parametrize(
    "attributes, filters, expected",
    [
        ({}, [{"exact": {"missing": "x"}}], False),
        ({}, [{"suffix": {"missing": ".json"}}], False),
        ({}, [{"exact": {"type": "com.example.order.created", "region": "eu"}}], True),
        ({}, [{"prefix": {"type": "com.example.", "source": "/billing"}}], False),  # every attribute named must match
        ({}, [{"suffix": {"subject": ".json", "type": ".created"}}], True),
        ({}, [{"suffix": {"subject": ".json", "type": ".deleted"}}], False),
        ({}, [{"prefix": {"type": "com.example.order.created"}}], True),  # the whole value is a prefix of itself
        ({}, [{"suffix": {"subject": "order-42.json"}}], True),
        ({}, [{"prefix": {"type": "Com.example."}}], False),  # case-sensitive
        ({}, [{"exact": {"region": "EU"}}], False),
        ({}, [{"exact": {"region": "e"}}], False),  # exact is not a prefix
        ({}, [{"not": {"exact": {"missing": "x"}}}], True),
        ({}, [{"not": {"not": {"exact": {"region": "eu"}}}}], True),
        (
            {},
            [
                {
                    "all": [
                        {"any": [{"exact": {"region": "us"}}, {"suffix": {"subject": ".json"}}]},
                        {"not": {"prefix": {"source": "/billing"}}},
                    ]
                }
            ],
            True,
        ),
        ({}, [{"any": [{"all": [{"exact": {"region": "eu"}}, {"exact": {"type": "x"}}]}, {"exact": {"region": "us"}}]}], False),
        ({}, [{"prefix": {"type": "com."}}, {"suffix": {"subject": ".json"}}], True),
        ({"region": "us"}, [{"prefix": {"type": "com."}}], False),  # `attributes` and `filters` must both match
        ({"region": "eu", "type": "com.example.order.created"}, [{"suffix": {"subject": ".json"}}], True),
        ({}, [{"regex": {"type": ".*"}}], False),  # a dialect it does not know never matches
        ({}, [{"any": [{"cesql": "region = 'eu'"}, {"exact": {"region": "eu"}}]}], True),  # CESQL adds nothing
        ({}, [{"all": [{"cesql": "TRUE"}, {"exact": {"region": "eu"}}]}], False),
    ],
)
def test_filter_semantics_beyond_the_basics(attributes, filters, expected):
    assert matches(attributes, filters, EVENT) is expected


def test_only_event_bucket_and_forward_triggers_take_broadcast_events():
    for kind, expected in (("event", True), ("bucket", True), (FORWARD, True), ("cron", False), (DEAD_LETTER, False)):
        assert Trigger("t", "fn", kind=kind).matches(EVENT) is expected, kind
    assert Trigger("t", "fn", attributes={"region": "us"}).matches(EVENT) is False


@pytest.mark.parametrize("entry", [{"not": {"cesql": "region = 'us'"}}, {"not": {"all": [{"cesql": "TRUE"}]}}])
def test_a_cesql_filter_never_matches_even_under_not(entry):
    assert matches({}, [entry], EVENT) is False
