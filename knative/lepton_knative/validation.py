"""Every generated object is checked twice before it reaches a cluster: against its CRD's
schema (`schemas.py`) and against the rules the schemas miss (`rules.py`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from lepton.errors import LeptonError
from lepton_knative.rules import rule_errors
from lepton_knative.schemas import schema_errors


class ManifestError(LeptonError):
    """A generated or hand-written object is not valid Knative; the message names the field."""

    exit_code = 2


def problems(obj: dict[str, Any]) -> list[str]:
    name = f"{obj.get('kind', '?')} {obj.get('metadata', {}).get('name', '?')}"
    return [f"{name}: {p}" for p in [*schema_errors(obj), *rule_errors(obj)]]


def ensure_valid(objects: Iterable[dict[str, Any]]) -> None:
    found = [p for obj in objects for p in problems(obj)]
    if found:
        raise ManifestError("; ".join(found))
