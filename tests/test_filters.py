"""Knative filter semantics, table-driven: what each dialect matches and what it does not."""

from __future__ import annotations

import pytest

from lepton_platform.broker.filters import matches

EVENT = {"specversion": "1.0", "id": "1", "source": "/orders/eu", "type": "com.example.order.created",
         "subject": "order-42.json", "region": "eu"}


@pytest.mark.parametrize("attributes, filters, expected", [
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
])
def test_filter_semantics(attributes, filters, expected):
    assert matches(attributes, filters, EVENT) is expected
