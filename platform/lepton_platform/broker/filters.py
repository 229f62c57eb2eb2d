"""Knative Eventing's filter semantics, evaluated against an event's attributes.

`attributes` (Trigger `filter.attributes`): every named attribute must equal the value, and an
empty value means "present with any value". `filters` (the newer API): a list that must all
match, each entry one dialect of exact, prefix, suffix, all, any or not. Names cover extension
attributes too. CESQL is not evaluated here: an entry that hangs on it never matches, even under `not` (the
SDK accepts it for Knative).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def attributes_match(wanted: Mapping[str, str], attrs: Mapping[str, str]) -> bool:
    return all(name in attrs and (value == "" or attrs[name] == value) for name, value in wanted.items())


def judge(entry: Mapping[str, Any], attrs: Mapping[str, str]) -> bool | None:
    """True or False, or None where the entry hangs on an expression the embedded broker does
    not evaluate (CESQL, an unknown dialect): `any` still matches on another branch, `all`
    still fails on one, and `not` of "unknown" stays unknown instead of becoming "always"."""
    ((dialect, body),) = entry.items()
    if dialect == "exact":
        return all(attrs.get(name) == value for name, value in body.items())
    if dialect == "prefix":
        return all(name in attrs and attrs[name].startswith(value) for name, value in body.items())
    if dialect == "suffix":
        return all(name in attrs and attrs[name].endswith(value) for name, value in body.items())
    if dialect in ("all", "any"):
        results = [judge(nested, attrs) for nested in body]
        decisive = False if dialect == "all" else True
        if decisive in results:
            return decisive
        return None if None in results else not decisive
    if dialect == "not":
        inner = judge(body, attrs)
        return None if inner is None else not inner
    return None


def filter_matches(entry: Mapping[str, Any], attrs: Mapping[str, str]) -> bool:
    return judge(entry, attrs) is True


def matches(attributes: Mapping[str, str], filters: list[Mapping[str, Any]], attrs: Mapping[str, str]) -> bool:
    return attributes_match(attributes, attrs) and all(filter_matches(entry, attrs) for entry in filters)
