"""Knative Eventing's filter semantics, evaluated against an event's attributes.

`attributes` (Trigger `filter.attributes`): every named attribute must equal the value, and an
empty value means "present with any value". `filters` (the newer API): a list that must all
match, each entry one dialect of exact, prefix, suffix, all, any or not. Names cover extension
attributes too. CESQL is not evaluated here and never matches (the SDK accepts it for Knative).
"""

from __future__ import annotations

from typing import Any, Mapping


def attributes_match(wanted: Mapping[str, str], attrs: Mapping[str, str]) -> bool:
    return all(name in attrs and (value == "" or attrs[name] == value) for name, value in wanted.items())


def filter_matches(entry: Mapping[str, Any], attrs: Mapping[str, str]) -> bool:
    ((dialect, body),) = entry.items()
    if dialect == "exact":
        return all(attrs.get(name) == value for name, value in body.items())
    if dialect == "prefix":
        return all(name in attrs and attrs[name].startswith(value) for name, value in body.items())
    if dialect == "suffix":
        return all(name in attrs and attrs[name].endswith(value) for name, value in body.items())
    if dialect == "all":
        return all(filter_matches(nested, attrs) for nested in body)
    if dialect == "any":
        return any(filter_matches(nested, attrs) for nested in body)
    if dialect == "not":
        return not filter_matches(body, attrs)
    return False


def matches(attributes: Mapping[str, str], filters: list[Mapping[str, Any]], attrs: Mapping[str, str]) -> bool:
    return attributes_match(attributes, attrs) and all(filter_matches(entry, attrs) for entry in filters)
