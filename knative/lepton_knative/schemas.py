"""Validation against Knative's CRD schemas (copied unchanged into `crds/`, see SOURCES.md).

The API server prunes unknown fields instead of rejecting them, which hides typos such as
`containerConcurency`. Here every object whose schema lists its properties, and does not say
`x-kubernetes-preserve-unknown-fields`, rejects fields it does not list.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator

CRDS = Path(__file__).resolve().parent / "crds"
FILES = {
    ("serving.knative.dev", "Service"): "serving/service.yaml",
    ("eventing.knative.dev", "Trigger"): "eventing/trigger.yaml",
    ("eventing.knative.dev", "Broker"): "eventing/broker.yaml",
    ("sources.knative.dev", "PingSource"): "eventing/pingsource.yaml",
}


def strict(schema: Any) -> Any:
    """A copy of an openAPIV3Schema for jsonschema: closed typed objects, int-or-string."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if "properties" in schema and "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@cache
def validator(api_version: str, kind: str) -> Draft7Validator:
    group, _, version = api_version.partition("/")
    path = FILES.get((group, kind))
    if path is None:
        raise KeyError(f"no CRD for {api_version} {kind}")
    crd = yaml.safe_load((CRDS / path).read_text())
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served", True):
            schema = strict(copy.deepcopy(entry["schema"]["openAPIV3Schema"]))
            # The API server always accepts these at the top, whether the CRD lists them or not.
            schema.setdefault("properties", {}).update(
                {
                    k: schema["properties"].get(k, {"type": t})
                    for k, t in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object"))
                }
            )
            return Draft7Validator(schema)
    raise KeyError(f"CRD {path} does not serve version {version}")


def schema_errors(obj: dict[str, Any]) -> Iterator[str]:
    """Each way `obj` breaks its CRD's schema, as 'field.path: message'."""
    for error in sorted(validator(obj["apiVersion"], obj["kind"]).iter_errors(obj), key=lambda e: list(e.absolute_path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        message = error.message
        if error.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown field")
        yield f"{where}: {message}"
