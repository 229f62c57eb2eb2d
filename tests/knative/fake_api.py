"""An in-test fake of a Kubernetes API server with Knative Serving v1.23 and Eventing v1.22 installed.

It is written from Kubernetes' and Knative's behaviour, never from Lepton's code (nothing here
imports `lepton_knative` or `lepton_platform`): the CRD YAML under knative/lepton_knative/crds and
the RBAC in knative/install/rbac.yaml are read as data. What a request goes through, in order:

  authentication  bearer TOKEN (user "tester", allowed everything) or SA_TOKEN (the platform's
                  service account); anything else is 401.
  authorization   RBAC from rbac.yaml (Role/RoleBinding, ClusterRole/ClusterRoleBinding) for the
                  service account; 403 with the API server's message. A server-side apply that
                  creates the object is also authorized as `create`.
  routing         custom objects (services, revisions, triggers, brokers, pingsources) and core
                  secrets and pods (+ pods/{name}/log); GET one, GET list with labelSelector, PATCH
                  with application/apply-patch+yaml, DELETE one. Anything else is 404/405/415.
  apply           server-side apply per field manager (managedFields, conflicts 409, force,
                  removal of fields a manager stops applying), then CRD structural defaults.
  validation      the typed-patch stage of structured-merge-diff (unknown fields, wrong scalar
                  types: HTTP 500 as a real API server answers today), the CRD openAPIV3Schema
                  (422 Invalid with causes), ObjectMeta and Secret rules (422).
  admission       Knative's webhooks (tests/knative/webhooks.py): 400 "admission webhook ...
                  denied the request: ...", plus `reject[name]` for a test-chosen denial.
  controllers     after `reads_until_ready` GETs an object turns Ready (or fails with
                  `fail[name]`); Services get Revisions, traffic, url; pods and logs on request.

`POST /broker` stands in for the Knative Broker's ingress (unauthenticated, records events).
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI, Request, Response
from jsonschema import Draft7Validator

from tests.knative import webhooks

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "knative" / "lepton_knative" / "crds"
RBAC_YAML = REPO / "knative" / "install" / "rbac.yaml"
INSTALL_NAMESPACE = "lepton"  # knative/install/kustomization.yaml `namespace:`

TOKEN = "fake-cluster-token"
SA_TOKEN = "fake-lepton-platform-sa-token"
ADMIN_USER = "tester"
PLATFORM_USER = "system:serviceaccount:lepton:lepton-platform"
KINDS = {
    "services": "Service",
    "revisions": "Revision",
    "triggers": "Trigger",
    "pingsources": "PingSource",
    "brokers": "Broker",
    "secrets": "Secret",
    "pods": "Pod",
}


# ---------------------------------------------------------------------------------------------
# Resources the fake serves
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    crd: str | None  # file under CRDS
    applyable: bool = True  # PATCH (server-side apply) supported

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """schema.GroupResource.String()"""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """schema.GroupKind.String()"""
        return f"{self.kind}.{self.group}" if self.group else self.kind


RESOURCES = {
    (r.group, r.version, r.plural): r
    for r in (
        Resource("serving.knative.dev", "v1", "services", "Service", "serving/service.yaml"),
        Resource("serving.knative.dev", "v1", "revisions", "Revision", "serving/revision.yaml", applyable=False),
        Resource("eventing.knative.dev", "v1", "triggers", "Trigger", "eventing/trigger.yaml"),
        Resource("eventing.knative.dev", "v1", "brokers", "Broker", "eventing/broker.yaml"),
        Resource("sources.knative.dev", "v1", "pingsources", "PingSource", "eventing/pingsource.yaml"),
        Resource("", "v1", "secrets", "Secret", None),
        Resource("", "v1", "pods", "Pod", None, applyable=False),
    )
}
BY_PLURAL = {r.plural: r for r in RESOURCES.values()}

# k8s.io/api/core/v1 ObjectMeta as structured-merge-diff sees it (the fields clients may apply).
METADATA_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "generateName": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "finalizers": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
        "ownerReferences": {
            "type": "array",
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["uid"],
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
        "uid": {"type": "string"},
        "resourceVersion": {"type": "string"},
        "generation": {"type": "integer"},
        "creationTimestamp": {"type": "string"},
        "deletionTimestamp": {"type": "string"},
        "selfLink": {"type": "string"},
        "deletionGracePeriodSeconds": {"type": "integer"},
        "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    },
}
SECRET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": METADATA_SCHEMA,
        "data": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
        "stringData": {"type": "object", "additionalProperties": {"type": "string"}},
        "type": {"type": "string"},
        "immutable": {"type": "boolean"},
    },
}
SYSTEM_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "selfLink",
    "managedFields",
    "deletionGracePeriodSeconds",
)


@cache
def crd_schema(path: str, version: str) -> dict[str, Any]:
    crd = yaml.load((CRDS / path).read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            schema = copy.deepcopy(entry["schema"]["openAPIV3Schema"])
            props = schema.setdefault("properties", {})
            props["metadata"] = METADATA_SCHEMA  # the API server always types metadata as ObjectMeta
            props.setdefault("apiVersion", {"type": "string"})
            props.setdefault("kind", {"type": "string"})
            return schema
    raise KeyError(f"{path} does not serve {version}")


def schema_for(resource: Resource) -> dict[str, Any]:
    if resource.crd:
        return crd_schema(resource.crd, resource.version)
    return SECRET_SCHEMA if resource.kind == "Secret" else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def child_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if not schema:
        return None
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


# ---------------------------------------------------------------------------------------------
# Kubernetes Status errors
# ---------------------------------------------------------------------------------------------


class ApiError(Exception):
    """A metav1.Status failure; `warnings` travel as `Warning:` headers."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None, warnings: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details
        self.warnings = warnings or []

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": self.message}
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code
        return body


def not_found(resource: Resource, name: str) -> ApiError:
    """errors.NewNotFound"""
    return ApiError(
        404,
        "NotFound",
        f'{resource.qualified} "{name}" not found',
        _omit_empty({"name": name, "group": resource.group, "kind": resource.plural}),
    )


def invalid(resource: Resource, name: str, errs: list[tuple[str, str, str]]) -> ApiError:
    """errors.NewInvalid from (cause type, field, ErrorBody) triples."""
    text = [f"{f}: {body}" for _, f, body in errs]
    aggregated = text[0] if len(text) == 1 else "[" + ", ".join(text) + "]"
    return ApiError(
        422,
        "Invalid",
        f'{resource.qualified_kind} "{name}" is invalid: {aggregated}',
        _omit_empty(
            {
                "name": name,
                "group": resource.group,
                "kind": resource.kind,
                "causes": [{"reason": t, "message": body, "field": f} for t, f, body in errs],
            }
        ),
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def _omit_empty(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v not in ("", None, [])}


def go_quote_value(value: Any) -> str:
    """How field.Error prints a bad value: strings quoted, numbers and bools bare."""
    if isinstance(value, str):
        return webhooks.go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return webhooks.go_v(value)
    return webhooks.go_quote(json.dumps(value, separators=(",", ":")))


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# RBAC
# https://github.com/kubernetes/kubernetes/blob/master/plugin/pkg/auth/authorizer/rbac/rbac.go  RBACAuthorizer.Authorize
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    def allows(self, verb: str, group: str, resource: str, name: str) -> bool:
        """RuleAllows: verb, API group, resource (with `*` and `*/subresource`), resourceNames."""
        if not ("*" in self.verbs or verb in self.verbs):
            return False
        if not ("*" in self.api_groups or group in self.api_groups):
            return False
        sub = resource.partition("/")[2]
        if not ("*" in self.resources or resource in self.resources or (sub and f"*/{sub}" in self.resources)):
            return False
        return not self.resource_names or name in self.resource_names


def load_rbac(documents: list[dict[str, Any]], default_namespace: str) -> list[tuple[str, str | None, Rule]]:
    """(subject, namespace or None for cluster-wide, rule) for every binding in the documents."""
    roles: dict[tuple[str, str], list[Rule]] = {}
    cluster_roles: dict[str, list[Rule]] = {}

    def rules(doc: dict[str, Any]) -> list[Rule]:
        return [
            Rule(
                tuple(r.get("apiGroups") or ()),
                tuple(r.get("resources") or ()),
                tuple(r.get("verbs") or ()),
                tuple(r.get("resourceNames") or ()),
            )
            for r in doc.get("rules") or []
        ]

    for doc in documents:
        meta = doc.get("metadata") or {}
        if doc.get("kind") == "Role":
            roles[(meta.get("namespace") or default_namespace, meta["name"])] = rules(doc)
        elif doc.get("kind") == "ClusterRole":
            cluster_roles[meta["name"]] = rules(doc)
    out: list[tuple[str, str | None, Rule]] = []
    for doc in documents:
        kind, meta = doc.get("kind"), doc.get("metadata") or {}
        if kind not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = (meta.get("namespace") or default_namespace) if kind == "RoleBinding" else None
        ref = doc.get("roleRef") or {}
        granted = roles.get((namespace or "", ref.get("name")), []) if ref.get("kind") == "Role" else cluster_roles.get(ref.get("name"), [])
        for subject in doc.get("subjects") or []:
            if subject.get("kind") == "ServiceAccount":
                who = f"system:serviceaccount:{subject.get('namespace') or namespace or default_namespace}:{subject['name']}"
            elif subject.get("kind") == "Group":
                who = "group:" + subject["name"]
            else:
                who = subject["name"]
            out += [(who, namespace, rule) for rule in granted]
    return out


# ---------------------------------------------------------------------------------------------
# Server-side apply: field sets over JSON objects (structured-merge-diff, simplified)
# A path is a tuple of elements: a field name (str), ("k", key) for an item of a
# `x-kubernetes-list-type: map` list, or ("v", json) for an item of a `set` list. Other lists are
# atomic: the whole list is one leaf.
# ---------------------------------------------------------------------------------------------

FieldPath = tuple


def _list_keys(schema: dict[str, Any] | None) -> tuple[str, list[str]]:
    if not schema:
        return "atomic", []
    return schema.get("x-kubernetes-list-type") or "atomic", list(schema.get("x-kubernetes-list-map-keys") or [])


def leaves(value: Any, schema: dict[str, Any] | None, prefix: FieldPath = ()) -> dict[FieldPath, Any]:
    """The set of fields a (partial) object sets, with their values: its leaves."""
    if isinstance(value, dict):
        if not value and prefix:
            return {prefix: {}}
        out: dict[FieldPath, Any] = {}
        for key, sub in value.items():
            if sub is not None:
                out.update(leaves(sub, child_schema(schema, key), prefix + (key,)))
        return out
    if isinstance(value, list):
        kind, keys = _list_keys(schema)
        items = (schema or {}).get("items")
        if kind == "map" and keys and all(isinstance(i, dict) for i in value):
            out = {}
            for item in value:
                element = ("k", json.dumps({k: item.get(k) for k in keys}, sort_keys=True, separators=(",", ":")))
                out.update(leaves(item, items, prefix + (element,)) or {prefix + (element,): {}})
            return out
        if kind == "set":
            return {prefix + (("v", json.dumps(i, sort_keys=True)),): i for i in value}
        return {prefix: value}
    return {prefix: value}


def _find_item(items: list[Any], element: tuple[str, str]) -> int:
    kind, text = element
    target = json.loads(text)
    for i, item in enumerate(items):
        if kind == "k" and isinstance(item, dict) and all(item.get(k) == v for k, v in target.items()):
            return i
        if kind == "v" and item == target:
            return i
    return -1


def get_path(obj: Any, path: FieldPath) -> tuple[bool, Any]:
    for element in path:
        if isinstance(element, tuple):
            if not isinstance(obj, list):
                return False, None
            i = _find_item(obj, element)
            if i < 0:
                return False, None
            obj = obj[i]
        else:
            if not isinstance(obj, dict) or element not in obj:
                return False, None
            obj = obj[element]
    return True, obj


def set_path(obj: dict[str, Any], path: FieldPath, value: Any) -> None:
    for i, element in enumerate(path):
        last = i == len(path) - 1
        nxt = path[i + 1] if not last else None
        if isinstance(element, tuple):
            j = _find_item(obj, element)
            if j < 0:
                obj.append(json.loads(element[1]) if element[0] == "k" else json.loads(element[1]))
                j = len(obj) - 1
            if last:
                if element[0] == "k" and isinstance(value, dict):
                    obj[j].update(copy.deepcopy(value))
                continue
            obj = obj[j]
        else:
            if last:
                obj[element] = copy.deepcopy(value)
                return
            if not isinstance(obj.get(element), (dict, list)) or (isinstance(nxt, tuple) != isinstance(obj[element], list)):
                obj[element] = [] if isinstance(nxt, tuple) else {}
            obj = obj[element]


def delete_path(obj: dict[str, Any], path: FieldPath) -> None:
    """Remove a field; parents it leaves empty go too. Removing a key field of a map-list item
    removes the item."""
    if (
        len(path) >= 2
        and not isinstance(path[-1], tuple)
        and isinstance(path[-2], tuple)
        and path[-2][0] == "k"
        and path[-1] in json.loads(path[-2][1])
    ):
        return delete_path(obj, path[:-1])
    chain: list[Any] = [obj]
    cur: Any = obj
    for element in path[:-1]:
        found, cur = get_path(cur, (element,))
        if not found:
            return None
        chain.append(cur)
    parent, last = chain[-1], path[-1]
    if isinstance(last, tuple):
        if isinstance(parent, list) and (i := _find_item(parent, last)) >= 0:
            parent.pop(i)
    elif isinstance(parent, dict):
        parent.pop(last, None)
    for depth in range(len(chain) - 1, 1, -1):  # prune emptied containers below the top-level fields
        node, holder = chain[depth], chain[depth - 1]
        if node not in ({}, []):
            break
        if isinstance(holder, list):
            holder[:] = [x for x in holder if x is not node]
        else:
            holder.pop(path[depth - 1], None)
    return None


def smd_path(path: FieldPath) -> str:
    """fieldpath.Path.String()"""
    out = []
    for element in path:
        if isinstance(element, tuple):
            kind, text = element
            if kind == "k":
                keys = json.loads(text)
                out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(keys.items())) + "]")
            else:
                out.append(f"[={text}]")
        else:
            out.append("." + element)
    return "".join(out)


def fields_v1(paths: Iterator[FieldPath] | set[FieldPath]) -> dict[str, Any]:
    """The nested FieldsV1 form of a set of leaf paths."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=smd_path):
        node = root
        for element in path:
            if isinstance(element, tuple):
                key = f"{element[0]}:{element[1]}"
                node = node.setdefault(key, {})
                node.setdefault(".", {})
            else:
                node = node.setdefault(f"f:{element}", {})
    return root


def tracked(obj: dict[str, Any]) -> dict[str, Any]:
    """What field managers own: not apiVersion, kind, status, name, namespace, or system metadata."""
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in SYSTEM_METADATA + ("name", "namespace")}
    if meta:
        out["metadata"] = meta
    else:
        out.pop("metadata", None)
    return out


@dataclass
class Manager:
    operation: str  # "Apply" or "Update"
    api_version: str
    fields: set[FieldPath]
    time: str

    def identity(self, name: str) -> str:
        """printManager in k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go"""
        return f'"{name}"' if self.operation == "Apply" else f'"{name}" using {self.api_version}'


def drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def apply_defaults(obj: Any, schema: dict[str, Any] | None) -> None:
    """CRD structural defaulting: `default` for absent properties of objects that exist."""
    if not schema:
        return
    if isinstance(obj, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
        for key, value in obj.items():
            apply_defaults(value, child_schema(schema, key))
    elif isinstance(obj, list):
        for item in obj:
            apply_defaults(item, schema.get("items"))


# ---------------------------------------------------------------------------------------------
# Validation by the API server
# ---------------------------------------------------------------------------------------------


def _smd_kind(value: Any) -> str:
    return {bool: "bool", int: "int64", float: "float64", str: "string", dict: "map[string]interface {}", list: "[]interface {}"}.get(
        type(value), type(value).__name__
    )


def typed_errors(value: Any, schema: dict[str, Any] | None, path: str = "") -> list[str]:
    """structured-merge-diff's ObjectToTyped on the applied object: undeclared fields and scalar
    type mismatches. https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/typed/validate.go"""
    if value is None or schema is None:
        return []
    if schema.get("x-kubernetes-int-or-string"):
        return (
            []
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
            else [f"{path}: expected string or number, got {_smd_kind(value)}"]
        )
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        if not isinstance(value, dict):
            return [f"{path}: expected map, got {_smd_kind(value)}"] if kind == "object" else []
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        errs: list[str] = []
        for key in value:
            sub = f"{path}.{key}"
            if key in props:
                errs += typed_errors(value[key], props[key], sub)
            elif isinstance(extra, dict):
                errs += typed_errors(value[key], extra, sub)
            elif not (schema.get("x-kubernetes-preserve-unknown-fields") or extra is True):
                errs.append(f"{sub}: field not declared in schema")
        return errs
    if kind == "array":
        if not isinstance(value, list):
            return [f"{path}: expected list, got {_smd_kind(value)}"]
        list_kind, keys = _list_keys(schema)
        errs = []
        for i, item in enumerate(value):
            if list_kind == "map" and keys and isinstance(item, dict):
                where = "[" + ",".join(f"{k}={json.dumps(item.get(k))}" for k in keys) + "]"
            else:
                where = f"[{i}]"
            errs += typed_errors(item, schema.get("items"), path + where)
        return errs
    if kind in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return [f"{path}: expected numeric (int or float), got {_smd_kind(value)}"]
    if kind == "string" and not isinstance(value, str):
        return [f"{path}: expected string, got &value.valueUnstructured{{Value:{webhooks.go_v(value)}}}"]
    if kind == "boolean" and not isinstance(value, bool):
        return [f"{path}: expected boolean, got &{{{webhooks.go_v(value)}}}"]
    return []


def to_jsonschema(schema: Any) -> Any:
    """Our own conversion of an openAPIV3Schema to JSON Schema draft 7 for value validation:
    int-or-string, nullable, x-kubernetes-* dropped. Unknown fields were already refused by
    `typed_errors`, so objects stay open here."""
    if isinstance(schema, list):
        return [to_jsonschema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {
        k: to_jsonschema(v)
        for k, v in schema.items()
        if not k.startswith("x-kubernetes-") and k not in ("description", "default", "example", "format", "title")
    }
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("anyOf", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    out.pop("nullable", None)
    return out


@cache
def value_validator(path: str, version: str) -> Draft7Validator:
    return Draft7Validator(to_jsonschema(crd_schema(path, version)))


_JS_TYPE = {"integer": "integer", "number": "number", "string": "string", "boolean": "boolean", "object": "object", "array": "array"}


def _json_type(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object", list: "array"}.get(type(value), "null")


def schema_value_errors(resource: Resource, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """apiextensions-apiserver's openAPI validation as field.ErrorList (type, field, ErrorBody).
    https://github.com/kubernetes/apiextensions-apiserver/blob/master/pkg/apiserver/validation/validation.go  kubeOpenAPIResultToFieldErrors"""
    if not resource.crd:
        return []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    errs: list[tuple[str, str, str]] = []
    for error in sorted(value_validator(resource.crd, resource.version).iter_errors(body), key=lambda e: [str(p) for p in e.absolute_path]):
        where = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in error.absolute_path).replace(".[", "[")
        if error.validator == "required":
            missing = re.match(r"'(.*)' is a required property", error.message)
            name = missing.group(1) if missing else "?"
            errs.append(("FieldValueRequired", f"{where}.{name}" if where else name, "Required value"))
        elif error.validator in ("type", "anyOf"):
            want = error.validator_value if error.validator == "type" else "integer,string"
            want = ",".join(want) if isinstance(want, list) else want
            got = _json_type(error.instance)
            errs.append(("FieldValueTypeInvalid", where, f'Invalid value: "{got}": {where} in body must be of type {want}: "{got}"'))
        elif error.validator == "enum":
            allowed = ", ".join(go_quote_value(v) for v in error.validator_value)
            errs.append(
                ("FieldValueNotSupported", where, f"Unsupported value: {go_quote_value(error.instance)}: supported values: {allowed}")
            )
        elif error.validator == "pattern":
            errs.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {go_quote_value(error.instance)}: {where} in body should match '{error.validator_value}'",
                )
            )
        elif error.validator == "minimum":
            errs.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {go_quote_value(error.instance)}: {where} in body should be greater than or equal to {error.validator_value}",
                )
            )
        elif error.validator == "maximum":
            errs.append(
                (
                    "FieldValueInvalid",
                    where,
                    f"Invalid value: {go_quote_value(error.instance)}: {where} in body should be less than or equal to {error.validator_value}",
                )
            )
        elif error.validator == "maxLength":
            errs.append(("FieldValueTooLong", where, f"Too long: may not be more than {error.validator_value} bytes"))
        else:
            errs.append(("FieldValueInvalid", where, f"Invalid value: {go_quote_value(error.instance)}: {error.message}"))
    return errs


def metadata_errors(resource: Resource, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    """k8s.io/apimachinery/pkg/api/validation ValidateObjectMeta: name, labels, annotations."""
    meta = obj.get("metadata") or {}
    errs: list[tuple[str, str, str]] = []
    name = meta.get("name") or ""
    for msg in webhooks.is_dns1123_subdomain(name) if name else []:
        errs.append(("FieldValueInvalid", "metadata.name", f"Invalid value: {go_quote_value(name)}: {msg}"))
    for key, value in (meta.get("labels") or {}).items():
        for msg in webhooks.is_qualified_name(key):
            errs.append(("FieldValueInvalid", "metadata.labels", f"Invalid value: {go_quote_value(key)}: {msg}"))
        for msg in webhooks.is_valid_label_value(value):
            errs.append(("FieldValueInvalid", "metadata.labels", f"Invalid value: {go_quote_value(value)}: {msg}"))
    total = 0
    for key, value in (meta.get("annotations") or {}).items():
        for msg in webhooks.is_qualified_name(key.lower()):
            errs.append(("FieldValueInvalid", "metadata.annotations", f"Invalid value: {go_quote_value(key)}: {msg}"))
        total += len(key) + len(value)
    if total > 256 * 1024:
        errs.append(("FieldValueTooLong", "metadata.annotations", "Too long: must have at most 262144 bytes"))
    if obj.get("kind") != resource.kind:
        errs.append(("FieldValueInvalid", "kind", f"Invalid value: {go_quote_value(obj.get('kind'))}: must be {resource.kind}"))
    return errs


def secret_errors(secret: dict[str, Any], old: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """k8s.io/kubernetes/pkg/apis/core/validation ValidateSecret / ValidateSecretUpdate (the parts a client meets)."""
    errs: list[tuple[str, str, str]] = []
    size = 0
    for key, value in (secret.get("data") or {}).items():
        for msg in webhooks.is_config_map_key(key):
            errs.append(("FieldValueInvalid", f"data[{key}]", f"Invalid value: {go_quote_value(key)}: {msg}"))
        size += len(base64.b64decode(value))
    if size > 1024 * 1024:
        errs.append(("FieldValueTooLong", "data", "Too long: must have at most 1048576 bytes"))
    if old is not None:
        if (old.get("type") or "Opaque") != (secret.get("type") or "Opaque"):
            errs.append(("FieldValueInvalid", "type", f"Invalid value: {go_quote_value(secret.get('type'))}: field is immutable"))
        if old.get("immutable"):
            if old.get("data") != secret.get("data"):
                errs.append(("FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set"))
            if not secret.get("immutable"):
                errs.append(("FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` is set"))
    return errs


# ---------------------------------------------------------------------------------------------
# Label selectors
# https://github.com/kubernetes/apimachinery/blob/master/pkg/labels/selector.go  Parse
# ---------------------------------------------------------------------------------------------


def parse_selector(text: str) -> list[tuple[str, str, list[str]]]:
    """Requirements (key, operator, values); raises ApiError 400 on a malformed selector."""
    reqs: list[tuple[str, str, list[str]]] = []
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur or parts:
        parts.append(cur)
    for part in (p.strip() for p in parts):
        m = (
            re.fullmatch(r"(!)\s*([^\s=!(),]+)", part)
            or re.fullmatch(r"([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)", part)
            or re.fullmatch(r"([^\s=!(),]+)\s+(in|notin)\s+\(([^()]*)\)", part)
            or re.fullmatch(r"([^\s=!(),]+)", part)
        )
        if not part or not m:
            raise bad_request(f"unable to parse requirement: found '{part}', expected: identifier")
        groups = m.groups()
        if groups[0] == "!":
            reqs.append((groups[1], "!", []))
        elif len(groups) == 1:
            reqs.append((groups[0], "exists", []))
        elif groups[1] in ("in", "notin"):
            reqs.append((groups[0], groups[1], [v.strip() for v in groups[2].split(",")]))
        else:
            reqs.append((groups[0], "!=" if groups[1] == "!=" else "=", [groups[2]]))
        key = reqs[-1][0]
        if webhooks.is_qualified_name(key):
            raise bad_request(
                f"unable to parse requirement: values[0][{key}]: Invalid value: {go_quote_value(key)}: "
                + webhooks.is_qualified_name(key)[0]
            )
    return reqs


def selector_matches(reqs: list[tuple[str, str, list[str]]], labels: dict[str, str]) -> bool:
    for key, op, values in reqs:
        have = key in labels
        if op == "exists" and not have:
            return False
        if op == "!" and have:
            return False
        if op == "=" and labels.get(key) != values[0]:
            return False
        if op == "!=" and have and labels[key] == values[0]:
            return False
        if op == "in" and labels.get(key) not in values:
            return False
        if op == "notin" and have and labels[key] in values:
            return False
    return True


def parse_bool(value: str, name: str) -> bool:
    """strconv.ParseBool, as the API server's query parameter decoder uses it."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise bad_request(f'strconv.ParseBool: parsing "{value}": invalid syntax')


# ---------------------------------------------------------------------------------------------
# The cluster
# ---------------------------------------------------------------------------------------------

Key = tuple[str, str, str]  # (plural, namespace, name)


@dataclass
class FakeCluster:
    """The cluster's state and behaviour. Fields a test sets or reads:

    objects            (plural, namespace, name) -> stored object (what GET returns)
    fail               Service / Revision / Trigger / PingSource / Broker name -> message, or
                       (reason, message): its (newest, not yet settled) Revision, or the object,
                       turns Ready=False with it. A Service's Ready then reads `RevisionFailed:
                       Revision "<rev>" failed with message: <message>.` as Knative words it.
    reject             name -> (field, message): a 422 Invalid with that cause at apply
    reads_until_ready  GETs after a write before the controllers settle (first GET: not seen yet)
    urls               Service name -> status.url (default http://{name}.{namespace}.example.com)
    broker_events      what POST /broker received
    applies            accepted server-side applies
    requests           (user, method, path, HTTP status) of every request
    rbac_path / rbac_documents / rbac_namespace   the RBAC the service account gets
    knative            webhooks.KnativeConfig: Knative's ConfigMap settings and feature flags
    require_brokers    Triggers fail with BrokerDoesNotExist unless their Broker exists
    typed_errors_as_invalid  answer unknown fields / wrong types with 422 instead of the real 500

    Helpers: get, of, managers, edit_as, scale, add_pod, add_broker, reset.
    """

    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, Any] = field(default_factory=dict)  # Service/Revision/other name -> Ready False message (or (reason, message))
    reject: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (field, message): 422 at apply
    reads_until_ready: int = 2
    reads: dict[Key, int] = field(default_factory=dict)
    applies: int = 0
    urls: dict[str, str] = field(default_factory=dict)  # Service name -> status.url to report
    broker_events: list[dict[str, Any]] = field(default_factory=list)  # what POST /broker received
    rbac_path: Path = RBAC_YAML
    rbac_documents: list[dict[str, Any]] | None = None  # instead of reading rbac_path
    rbac_namespace: str = INSTALL_NAMESPACE  # namespace kustomize gives namespaced RBAC
    knative: webhooks.KnativeConfig = field(default_factory=webhooks.KnativeConfig)
    require_brokers: bool = False  # Triggers fail with BrokerDoesNotExist unless the Broker exists
    typed_errors_as_invalid: bool = False  # answer unknown fields / wrong types 422 instead of the real 500
    requests: list[tuple[str, str, str, int]] = field(default_factory=list)  # (user, method, path, code)
    managed: dict[Key, dict[str, Manager]] = field(default_factory=dict, repr=False)
    pod_logs: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False)
    pod_log_times: dict[tuple[str, str, str], list[float]] = field(default_factory=dict, repr=False)  # per line: when it was logged
    _services: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict, repr=False)
    _version: int = 1000
    _rbac_cache: Any = field(default=None, repr=False)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # ----- helpers for tests --------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything: every field back to its default (a server can be reused)."""
        import dataclasses

        with self.lock:
            for f in dataclasses.fields(self):
                if f.name != "lock":
                    setattr(self, f.name, f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((plural, namespace, name))

    def of(self, plural: str, namespace: str | None = None) -> dict[str, dict[str, Any]]:
        """name -> object for one resource (one namespace or all)."""
        return {n: o for (p, ns, n), o in self.objects.items() if p == plural and (namespace is None or ns == namespace)}

    def managers(self, plural: str, namespace: str, name: str) -> dict[str, set[str]]:
        """Field manager -> the fields it owns, as structured-merge-diff path strings."""
        return {m: {smd_path(p) for p in e.fields} for m, e in self.managed.get((plural, namespace, name), {}).items()}

    def edit_as(self, manager: str, plural: str, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """What `kubectl edit` by `manager` does: a JSON merge patch sent as an update (operation
        Update), which takes ownership of what it changes without conflicts. Goes through the
        same validation and webhooks; raises ApiError when refused."""
        with self.lock:
            resource = BY_PLURAL[plural]
            key = (plural, namespace, name)
            if key not in self.objects:
                raise not_found(resource, name)
            new = merge_patch(copy.deepcopy(self.objects[key]), patch)
            return self._write(resource, namespace, name, new, manager, "Update", force=True, user=ADMIN_USER)[0]

    def scale(self, revision: str, replicas: int, namespace: str | None = None) -> None:
        """Set a Revision's status.actualReplicas and desiredReplicas (what the autoscaler did)."""
        with self.lock:
            key = self._find("revisions", revision, namespace)
            status = self.objects[key].setdefault("status", {})
            status["actualReplicas"] = status["desiredReplicas"] = replicas
            self._touch(key)

    def add_pod(
        self,
        revision: str,
        pod_name: str | None = None,
        log: str = "",
        ready: bool = True,
        namespace: str | None = None,
        queue_proxy_log: str = "",
        waiting: bool = False,
    ) -> dict[str, Any]:
        """A running pod of `revision`, labelled as Knative labels them, whose user container
        logs `log`; its containers are the revision's and `queue-proxy`. With `waiting`, a
        pod still starting (Pending, ContainerCreating): the API refuses its logs with 400."""
        with self.lock:
            key = self._find("revisions", revision, namespace)
            rev = self.objects[key]
            ns = key[1]
            pod_name = pod_name or f"{revision}-deployment-{uuid.uuid4().hex[:10]}-{uuid.uuid4().hex[:5]}"
            labels = {
                k: v
                for k, v in (rev["metadata"].get("labels") or {}).items()
                if k not in ("serving.knative.dev/route", "serving.knative.dev/routingState")
            }
            labels.update(
                {
                    "serving.knative.dev/revision": revision,
                    "serving.knative.dev/revisionUID": rev["metadata"]["uid"],
                    "pod-template-hash": pod_name.split("-")[-2] if pod_name.count("-") >= 2 else "0",
                }
            )
            labels.setdefault("app", revision)
            containers = []
            for c in (rev.get("spec") or {}).get("containers") or []:
                ports = (
                    [
                        {"name": "user-port", "containerPort": p.get("containerPort") or 8080, "protocol": "TCP"}
                        for p in (c.get("ports") or [{}])[:1]
                    ]
                    if c.get("ports") or len(rev["spec"]["containers"]) == 1
                    else []
                )
                containers.append(
                    {
                        "name": c.get("name") or "user-container",
                        "image": c.get("image", ""),
                        "ports": ports,
                        "env": (c.get("env") or [])
                        + [
                            {"name": "PORT", "value": str((ports or [{}])[0].get("containerPort", 8080))},
                            {"name": "K_REVISION", "value": revision},
                            {"name": "K_CONFIGURATION", "value": labels.get("serving.knative.dev/configuration", "")},
                            {"name": "K_SERVICE", "value": labels.get("serving.knative.dev/service", "")},
                        ],
                    }
                )
            containers.append(
                {
                    "name": "queue-proxy",
                    "image": "gcr.io/knative-releases/knative.dev/serving/cmd/queue@sha256:" + "0" * 64,
                    "ports": [
                        {"name": "http-queueadm", "containerPort": 8022, "protocol": "TCP"},
                        {"name": "http-autometric", "containerPort": 9090, "protocol": "TCP"},
                        {"name": "http-usermetric", "containerPort": 9091, "protocol": "TCP"},
                        {"name": "queue-port", "containerPort": 8012, "protocol": "TCP"},
                        {"name": "https-port", "containerPort": 8112, "protocol": "TCP"},
                    ],
                }
            )
            started = now()
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": ns,
                    "labels": labels,
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": started,
                    "generation": 1,
                    "annotations": {"kubectl.kubernetes.io/default-container": containers[0]["name"]},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "controller": True,
                            "blockOwnerDeletion": True,
                            "uid": str(uuid.uuid4()),
                            "name": pod_name.rsplit("-", 1)[0],
                        }
                    ],
                },
                "spec": {
                    "containers": containers,
                    "enableServiceLinks": False,
                    "restartPolicy": "Always",
                    "serviceAccountName": rev["spec"].get("serviceAccountName") or "default",
                },
                "status": {
                    "phase": "Pending" if waiting else "Running",
                    "startTime": started,
                    "conditions": [
                        {
                            "type": t,
                            "status": "True" if ready or t in ("Initialized", "PodScheduled") else "False",
                            "lastTransitionTime": started,
                        }
                        for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                    ],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": ready and not waiting,
                            "restartCount": 0,
                            "started": not waiting,
                            "state": {"waiting": {"reason": "ContainerCreating"}} if waiting else {"running": {"startedAt": started}},
                        }
                        for c in containers
                    ],
                },
            }
            pkey = ("pods", ns, pod_name)
            self.objects[pkey] = pod
            self._touch(pkey)
            self.pod_logs[(ns, pod_name, containers[0]["name"])] = log
            self.pod_logs[(ns, pod_name, "queue-proxy")] = queue_proxy_log
            return pod

    def add_broker(self, name: str = "default", namespace: str = "default") -> dict[str, Any]:
        """A Ready Broker, as `knative/install/broker.yaml` creates one."""
        with self.lock:
            broker = {
                "apiVersion": "eventing.knative.dev/v1",
                "kind": "Broker",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": {"eventing.knative.dev/broker.class": "MTChannelBasedBroker"},
                },
                "spec": {},
            }
            return self._write(BY_PLURAL["brokers"], namespace, name, broker, "kubectl", "Apply", force=True, user=ADMIN_USER)[0]

    # ----- internals ----------------------------------------------------------------------

    def _find(self, plural: str, name: str, namespace: str | None) -> Key:
        for key in self.objects:
            if key[0] == plural and key[2] == name and (namespace is None or key[1] == namespace):
                return key
        raise KeyError(f"no {plural} {name!r}")

    def _touch(self, key: Key) -> None:
        self._version += 1
        self.objects[key].setdefault("metadata", {})["resourceVersion"] = str(self._version)

    def _rbac(self) -> list[tuple[str, str | None, Rule]]:
        source = (str(self.rbac_path), id(self.rbac_documents), self.rbac_namespace)
        if self._rbac_cache is None or self._rbac_cache[0] != source:
            documents = self.rbac_documents
            if documents is None:
                documents = [d for d in yaml.safe_load_all(Path(self.rbac_path).read_text()) if d]
            self._rbac_cache = (source, load_rbac(documents, self.rbac_namespace))
        return self._rbac_cache[1]

    def authorize(self, user: str, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        if user == ADMIN_USER:
            return True
        subjects = {user, "group:system:authenticated"}
        if user.startswith("system:serviceaccount:"):
            subjects |= {"group:system:serviceaccounts", f"group:system:serviceaccounts:{user.split(':')[2]}"}
        return any(
            who in subjects and (ns is None or ns == namespace) and rule.allows(verb, group, resource, name)
            for who, ns, rule in self._rbac()
        )

    def forbidden(self, user: str, verb: str, resource: Resource, subresource: str, namespace: str, name: str) -> ApiError:
        """responsewriters.ForbiddenStatusError / forbiddenMessage"""
        what = resource.plural + (f"/{subresource}" if subresource else "")
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        reason = f'User "{user}" cannot {verb} resource "{what}" in API group "{resource.group}" {scope}'
        prefix = f'{resource.qualified} "{name}"' if name else resource.qualified
        return ApiError(
            403,
            "Forbidden",
            f"{prefix} is forbidden: {reason}",
            _omit_empty({"name": name, "group": resource.group, "kind": resource.plural}),
        )

    # ----- the write path: server-side apply and updates ---------------------------------

    def apply(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        body: dict[str, Any],
        manager: str,
        force: bool,
        user: str,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool, list[str]]:
        """PATCH application/apply-patch+yaml. Returns (object, created, warnings)."""
        if not isinstance(body, dict):
            raise bad_request("error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}")
        if body.get("apiVersion") != resource.api_version:
            raise bad_request(
                f"Incorrect version specified in apply patch. Specified patch version: "
                f"{body.get('apiVersion') or ''}, expected: {resource.api_version}"
            )
        meta = body.get("metadata") or {}
        if meta.get("managedFields") is not None:
            raise bad_request("metadata.managedFields must be nil")
        if (meta.get("name") or "") != name:
            raise bad_request(f"the name of the object ({meta.get('name') or ''}) does not match the name on the URL ({name})")
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
        live = self.objects.get((resource.plural, namespace, name))
        if live is not None and meta.get("resourceVersion") and meta["resourceVersion"] != live["metadata"].get("resourceVersion"):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                {"name": name, "group": resource.group, "kind": resource.plural}
                if resource.group
                else {"name": name, "kind": resource.plural},
            )
        applied = drop_nulls({k: v for k, v in body.items() if k != "status"})
        if resource.kind == "Secret":
            applied = self._secret_string_data(applied)
        problems = typed_errors(applied, schema_for(resource))
        if problems:
            if self.typed_errors_as_invalid:
                raise invalid(
                    resource, name, [("FieldValueInvalid", p.split(": ", 1)[0].lstrip("."), p.split(": ", 1)[1]) for p in problems]
                )
            text = problems[0] if len(problems) == 1 else "errors:\n" + "\n".join("  " + p for p in problems)
            gvk = f"{resource.api_version if resource.group else '/' + resource.version}, Kind={resource.kind}"
            raise ApiError(500, "", f"failed to create typed patch object ({namespace}/{name}; {gvk}): {text}")
        return self._write(resource, namespace, name, applied, manager, "Apply", force, user, dry_run)

    def _secret_string_data(self, secret: dict[str, Any]) -> dict[str, Any]:
        string_data = secret.pop("stringData", None)
        if isinstance(string_data, dict):
            data = secret.setdefault("data", {})
            for key, value in string_data.items():
                if isinstance(value, str):
                    data[key] = base64.b64encode(value.encode()).decode()
                else:
                    secret.setdefault("stringData", {})[key] = value  # left for typed_errors to refuse
        for value in (secret.get("data") or {}).values():
            if isinstance(value, str):
                try:
                    base64.b64decode(value, validate=True)
                except (binascii.Error, ValueError):
                    bad = webhooks._bad_base64_offset(value)
                    raise bad_request(
                        f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte {bad}'
                    ) from None
        return secret

    def _write(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        applied: dict[str, Any],
        manager: str,
        operation: str,
        force: bool,
        user: str,
        dry_run: bool = False,
    ) -> tuple[dict[str, Any], bool, list[str]]:
        """Merge, validate, admit and store; returns (object, created, warnings)."""
        key = (resource.plural, namespace, name)
        live = self.objects.get(key)
        schema = schema_for(resource)
        base = (
            copy.deepcopy(live)
            if live
            else {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": {"name": name, "namespace": namespace}}
        )
        managers = {m: Manager(e.operation, e.api_version, set(e.fields), e.time) for m, e in self.managed.get(key, {}).items()}
        if operation == "Apply":
            new, managers = ssa_apply(base, applied, managers, manager, force, schema, resource.api_version)
        else:
            new, managers = ssa_update(base, applied, managers, manager, schema, resource.api_version)
        new["apiVersion"], new["kind"] = applied.get("apiVersion", resource.api_version), applied.get("kind", resource.kind)
        new.setdefault("metadata", {}).update(name=name, namespace=namespace)
        apply_defaults(new, schema)
        if resource.kind == "Secret":
            new.setdefault("type", "Opaque")

        # API server validation (strategy.Validate): 422
        errs = metadata_errors(resource, new) + schema_value_errors(resource, new)
        if resource.kind == "Secret":
            errs += secret_errors(new, live)
        if errs:
            raise invalid(resource, name, errs)
        # apply-create is authorized as create (patch.go: withAuthorization(createAuthorizerAttributes))
        if live is None and not self.authorize(user, "create", resource.group, resource.plural, namespace, name):
            raise self.forbidden(user, "create", resource, "", namespace, name)
        # validating admission: Knative's webhooks, then the test's own rejection
        admission = webhooks.admit(resource.kind, _strip_system(new), _strip_system(live) if live else None, namespace, self.knative)
        if admission.denial:
            details = {"causes": [{"message": admission.denial.message}]} if admission.denial.code == 500 else None
            raise ApiError(admission.denial.code, admission.denial.reason, admission.denial.text, details, admission.warnings)
        if name in self.reject:
            where, message = self.reject[name]
            raise invalid(resource, name, [("FieldValueInvalid", where, message)])

        changed = (
            live is None
            or _strip_system(new) != _strip_system(live)
            or {m: (e.operation, e.fields) for m, e in managers.items()}
            != {m: (e.operation, e.fields) for m, e in self.managed.get(key, {}).items()}
        )
        if operation == "Apply" and not dry_run:
            self.applies += 1
        if dry_run or not changed:
            return copy.deepcopy(live if not changed and live else new), live is None, admission.warnings
        meta = new["metadata"]
        if live is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
        spec_changed = live is None or {k: v for k, v in new.items() if k not in ("metadata", "status")} != {
            k: v for k, v in live.items() if k not in ("metadata", "status")
        }
        if resource.kind not in ("Secret", "Pod"):
            meta["generation"] = (live or {}).get("metadata", {}).get("generation", 0) + (1 if spec_changed else 0)
        for m, entry in managers.items():
            if m == manager or m not in self.managed.get(key, {}):
                entry.time = now()
        meta["managedFields"] = [
            {
                "manager": m,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields_v1(e.fields),
            }
            for m, e in managers.items()
        ]
        if live is not None and "status" in live:
            new["status"] = live["status"]
        self.objects[key] = new
        self.managed[key] = managers
        self._touch(key)
        if spec_changed:
            self.reads[key] = 0
            self._on_spec_change(resource, key, live)
        return copy.deepcopy(new), live is None, admission.warnings

    def delete(self, resource: Resource, namespace: str, name: str) -> dict[str, Any]:
        key = (resource.plural, namespace, name)
        obj = self.objects.pop(key, None)
        if obj is None:
            raise not_found(resource, name)
        self.managed.pop(key, None)
        self.reads.pop(key, None)
        if resource.plural == "services":  # garbage collection through ownerReferences
            self._services.pop((namespace, name), None)
            for rkey in [
                k
                for k, o in self.objects.items()
                if k[0] == "revisions"
                and k[1] == namespace
                and (o["metadata"].get("labels") or {}).get("serving.knative.dev/service") == name
            ]:
                self.delete(BY_PLURAL["revisions"], namespace, rkey[2])
        if resource.plural == "revisions":
            for pkey in [
                k
                for k, o in self.objects.items()
                if k[0] == "pods" and k[1] == namespace and (o["metadata"].get("labels") or {}).get("serving.knative.dev/revision") == name
            ]:
                self.objects.pop(pkey, None)
        self._version += 1
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": _omit_empty(
                {"name": name, "group": resource.group, "kind": resource.plural, "uid": obj.get("metadata", {}).get("uid")}
            ),
        }

    # ----- controllers --------------------------------------------------------------------

    def _on_spec_change(self, resource: Resource, key: Key, live: dict[str, Any] | None) -> None:
        """Knative's configuration controller: a new template makes a new Revision."""
        if resource.plural != "services":
            return
        _, ns, name = key
        svc = self.objects[key]
        state = self._services.setdefault((ns, name), {"generation": 0, "template": None, "created": []})
        template = (svc.get("spec") or {}).get("template") or {}
        if template == state["template"]:
            return
        state["template"] = copy.deepcopy(template)
        state["generation"] += 1
        rev_name = ((template.get("metadata") or {}).get("name")) or f"{name}-{state['generation']:05d}"
        rkey = ("revisions", ns, rev_name)
        if rkey in self.objects:
            existing = self.objects[rkey]
            if existing.get("spec") != (template.get("spec") or {}):
                state["creation_failed"] = f'revisions.serving.knative.dev "{rev_name}" already exists'
                return
        else:
            self.objects[rkey] = self._make_revision(svc, template, rev_name, state["generation"])
            self.reads[rkey] = 0
            self._touch(rkey)
        state.pop("creation_failed", None)
        state["created"].append(rev_name)

    def _make_revision(self, svc: dict[str, Any], template: dict[str, Any], name: str, generation: int) -> dict[str, Any]:
        """pkg/reconciler/configuration/resources/revision.go MakeRevision"""
        meta = template.get("metadata") or {}
        svc_meta = svc["metadata"]
        labels = dict(meta.get("labels") or {})
        labels.update(
            {
                "serving.knative.dev/configuration": svc_meta["name"],
                "serving.knative.dev/configurationGeneration": str(generation),
                "serving.knative.dev/configurationUID": str(uuid.uuid5(uuid.NAMESPACE_OID, svc_meta["uid"] + "/configuration")),
                "serving.knative.dev/routingState": "pending",
                "serving.knative.dev/service": svc_meta["name"],
                "serving.knative.dev/serviceUID": svc_meta["uid"],
            }
        )
        spec = copy.deepcopy(template.get("spec") or {})
        webhooks.default_revision_spec(spec, self.knative, in_create=True)
        return {
            "apiVersion": "serving.knative.dev/v1",
            "kind": "Revision",
            "metadata": {
                "name": name,
                "namespace": svc_meta["namespace"],
                "labels": labels,
                "annotations": dict(meta.get("annotations") or {}),
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "creationTimestamp": now(),
                "ownerReferences": [
                    {
                        "apiVersion": "serving.knative.dev/v1",
                        "kind": "Configuration",
                        "name": svc_meta["name"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                        "uid": labels["serving.knative.dev/configurationUID"],
                    }
                ],
            },
            "spec": spec,
            "status": {
                "observedGeneration": 1,
                "actualReplicas": 0,
                "desiredReplicas": 0,
                "conditions": _conditions(
                    ("Ready", "Unknown", "Deploying", ""),
                    ("ResourcesAvailable", "Unknown", "Deploying", ""),
                    ("ContainerHealthy", "Unknown", "Deploying", ""),
                ),
            },
        }

    def _failure(self, *names: str, default_reason: str) -> tuple[str, str] | None:
        for name in names:
            if name in self.fail:
                value = self.fail[name]
                return tuple(value) if isinstance(value, (tuple, list)) else (default_reason, str(value))  # type: ignore[return-value]
        return None

    def _settle_revision(self, rkey: Key, service: str | None) -> str:
        """A revision's fate is decided once: "True" or "False" (sticky)."""
        rev = self.objects[rkey]
        status = rev.setdefault("status", {})
        ready = _condition(rev, "Ready")
        if ready and ready["status"] in ("True", "False"):
            return ready["status"]
        failure = self._failure(rkey[2], *([service] if service else []), default_reason="RevisionFailed")
        if failure:
            reason, message = failure
            status["conditions"] = _conditions(
                ("Ready", "False", reason, message), ("ResourcesAvailable", "True", "", ""), ("ContainerHealthy", "False", reason, message)
            )
        else:
            status["conditions"] = _conditions(
                ("Ready", "True", "", ""),
                ("ResourcesAvailable", "True", "", ""),
                ("ContainerHealthy", "True", "", ""),
                ("Active", "True", "", ""),
            )
            status["containerStatuses"] = [
                {"name": c.get("name") or "user-container", "imageDigest": _digest(c.get("image", ""))}
                for c in rev["spec"].get("containers") or []
            ]
        self._touch(rkey)
        return "False" if failure else "True"

    def reconcile(self, key: Key) -> None:
        """Called on every GET: the controllers act once an object has been read often enough."""
        obj = self.objects.get(key)
        if obj is None:
            return
        reads = self.reads.get(key, 0)
        plural, ns, name = key
        if plural == "revisions":
            if reads >= self.reads_until_ready:
                self._settle_revision(key, (obj["metadata"].get("labels") or {}).get("serving.knative.dev/service"))
            return
        if plural not in ("services", "triggers", "pingsources", "brokers"):
            return
        generation = obj["metadata"].get("generation", 1)
        if reads < min(2, self.reads_until_ready):
            return  # the controller has not seen this generation yet
        status = obj.setdefault("status", {})
        final = reads >= self.reads_until_ready
        before = copy.deepcopy(status)
        if plural == "services":
            self._reconcile_service(obj, ns, name, final)
        else:
            self._reconcile_other(obj, plural, ns, name, final)
        status["observedGeneration"] = generation
        previous = {c.get("type"): c for c in before.get("conditions") or []}
        for cond in status.get("conditions") or []:  # lastTransitionTime moves only when the status does
            old = previous.get(cond["type"])
            if old and old.get("status") == cond["status"]:
                cond["lastTransitionTime"] = old.get("lastTransitionTime", cond["lastTransitionTime"])
        if status != before:
            self._touch(key)

    def _reconcile_other(self, obj: dict[str, Any], plural: str, ns: str, name: str, final: bool) -> None:
        status = obj["status"]
        if not final:
            if not _condition(obj, "Ready"):
                status["conditions"] = _conditions(("Ready", "Unknown", "", ""))
            return
        failure = self._failure(name, default_reason="Failed")
        spec = obj.get("spec") or {}
        if not failure and plural == "triggers" and self.require_brokers and spec.get("broker"):
            if ("brokers", ns, spec["broker"]) not in self.objects:
                failure = ("BrokerDoesNotExist", f'Broker "{spec["broker"]}" does not exist')
        if failure:
            status["conditions"] = _conditions(("Ready", "False", *failure))
            return
        if plural == "triggers":
            status["subscriberUri"] = self._resolve(spec.get("subscriber"), ns)
            status["conditions"] = _conditions(
                ("Ready", "True", "", ""),
                ("BrokerReady", "True", "", ""),
                ("DependencyReady", "True", "", ""),
                ("SubscriberResolved", "True", "", ""),
                ("SubscriptionReady", "True", "", ""),
            )
        elif plural == "pingsources":
            status["sinkUri"] = self._resolve(spec.get("sink"), ns)
            status["conditions"] = _conditions(("Ready", "True", "", ""), ("Deployed", "True", "", ""), ("SinkProvided", "True", "", ""))
        else:
            status["address"] = {"url": f"http://broker-ingress.knative-eventing.svc.cluster.local/{ns}/{name}"}
            status["conditions"] = _conditions(("Ready", "True", "", ""), ("Addressable", "True", "", ""))

    def _resolve(self, dest: Any, ns: str) -> str:
        dest = dest if isinstance(dest, dict) else {}
        ref = dest.get("ref") if isinstance(dest.get("ref"), dict) else None
        if ref:
            ref_ns = ref.get("namespace") or ns
            if ref.get("kind") == "Broker":
                return f"http://broker-ingress.knative-eventing.svc.cluster.local/{ref_ns}/{ref.get('name')}"
            return f"http://{ref.get('name')}.{ref_ns}.svc.cluster.local" + (dest.get("uri") or "")
        return dest.get("uri") or ""

    def _reconcile_service(self, svc: dict[str, Any], ns: str, name: str, final: bool) -> None:
        """Knative's service, configuration and route reconcilers, reduced to their status."""
        status = svc["status"]
        state = self._services.setdefault((ns, name), {"generation": 0, "template": None, "created": []})
        latest = state["created"][-1] if state["created"] else None
        if latest:
            status["latestCreatedRevisionName"] = latest
        # `urls[name]` is where a test's stand-in pod answers: both addresses point there.
        status["address"] = {"url": self.urls.get(name, f"http://{name}.{ns}.svc.cluster.local")}
        # ConfigurationsReady
        if state.get("creation_failed"):
            config = ("False", "RevisionFailed", f"Revision creation failed with message: {state['creation_failed']}.")
        elif latest is None:
            config = ("Unknown", "", "")
        else:
            fate = self._settle_revision(("revisions", ns, latest), name) if final else "Unknown"
            if fate == "True":
                status["latestReadyRevisionName"] = latest
                config = ("True", "", "")
            elif fate == "False":
                rev_ready = _condition(self.objects[("revisions", ns, latest)], "Ready") or {}
                config = ("False", "RevisionFailed", f'Revision "{latest}" failed with message: {rev_ready.get("message", "")}.')
            else:
                config = ("Unknown", "", "")
        # RoutesReady: resolve spec.traffic (default: 100% to the latest ready revision)
        traffic_spec = (svc.get("spec") or {}).get("traffic") or [{"percent": 100, "latestRevision": True}]
        resolved, route = [], ("True", "", "")
        latest_ready = status.get("latestReadyRevisionName")
        for target in traffic_spec:
            pinned = target.get("revisionName")
            latest_flag = target.get("latestRevision")
            if latest_flag is None:
                latest_flag = not pinned
            if latest_flag:
                if not latest_ready:
                    route = (
                        ("False", "RevisionMissing", f'Configuration "{name}" does not have any ready Revision.')
                        if config[0] == "False"
                        else ("Unknown", "RevisionMissing", f'Configuration "{name}" is waiting for a Revision to become ready.')
                    )
                    break
                revision = latest_ready
            else:
                rkey = ("revisions", ns, pinned)
                if rkey not in self.objects:
                    route = ("False", "RevisionMissing", f'Revision "{pinned}" referenced in traffic not found.')
                    break
                owner = (self.objects[rkey]["metadata"].get("labels") or {}).get("serving.knative.dev/service")
                if owner != name:
                    route = ("False", "RevisionNotOwned", f'Revision "{pinned}" belongs to Service "{owner}", not Service "{name}".')
                    break
                fate = self._settle_revision(rkey, name) if final else "Unknown"
                if fate == "False":
                    route = ("False", "RevisionMissing", f'Revision "{pinned}" failed to become ready.')
                    break
                if fate != "True":
                    route = ("Unknown", "RevisionMissing", f'Revision "{pinned}" is not yet ready.')
                    break
                revision = pinned
            entry: dict[str, Any] = {"latestRevision": bool(latest_flag), "percent": target.get("percent", 0), "revisionName": revision}
            if target.get("tag"):
                entry["tag"] = target["tag"]
                entry["url"] = f"http://{target['tag']}-{name}.{ns}.example.com"
            resolved.append(entry)
        if route[0] == "True":
            status["traffic"] = resolved
            status["url"] = self.urls.get(name, f"http://{name}.{ns}.example.com")
            routed = {t["revisionName"] for t in resolved}
            for rkey, rev in self.objects.items():
                labels = rev["metadata"].get("labels") or {}
                if rkey[0] == "revisions" and rkey[1] == ns and labels.get("serving.knative.dev/service") == name:
                    labels["serving.knative.dev/routingState"] = "active" if rkey[2] in routed else "reserve"
        # Ready follows the dependents as knative.dev/pkg/apis ConditionSet does (a False wins).
        ready: tuple[str, str, str] = ("True", "", "")
        for dep in (config, route):
            if dep[0] == "False":
                ready = dep
            elif dep[0] == "Unknown" and ready[0] != "False":
                ready = dep
        if ready[0] == "Unknown" and not ready[1]:
            ready = ("Unknown", "RevisionMissing", f'Configuration "{name}" is waiting for a Revision to become ready.')
        status["conditions"] = _conditions(("ConfigurationsReady", *config), ("Ready", *ready), ("RoutesReady", *route))

    # ----- HTTP ---------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

        @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        async def handle(path: str, request: Request) -> Response:
            body = await request.body()
            with self.lock:
                response = self.handle(request.method, "/" + path, dict(request.query_params), dict(request.headers), body)
            return response

        return app

    def handle(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Response:
        user = "system:anonymous"
        try:
            if path == "/broker" and method == "POST":
                self.broker_events.append(yaml.safe_load(body))
                return Response(status_code=202)
            auth = headers.get("authorization", "")
            user = {f"Bearer {TOKEN}": ADMIN_USER, f"Bearer {SA_TOKEN}": PLATFORM_USER}.get(auth, "")
            if not user:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            response = self.route(user, method, path, query, headers, body)
        except ApiError as exc:
            response = Response(json.dumps(exc.status()), status_code=exc.code, media_type="application/json")
            for warning in exc.warnings:
                response.headers.append("Warning", f"299 - {json.dumps(warning)}")
        self.requests.append((user, method, path, response.status_code))
        return response

    def route(self, user: str, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> Response:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        namespace = ""
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        plural, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
        verb = {
            "GET": "get" if name else ("watch" if query.get("watch") in ("true", "1") else "list"),
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
            "POST": "create",
            "PUT": "update",
        }[method]
        resource = RESOURCES.get((group, version, plural))
        rbac_resource = plural + (f"/{sub}" if sub else "")
        if not self.authorize(user, verb, group, rbac_resource, namespace, name):
            raise self.forbidden(user, verb, resource or Resource(group, version, plural, plural, None), sub, namespace, name)
        if resource is None or (sub and (resource.plural, sub) != ("pods", "log")):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        not_allowed = ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource", {})
        if sub == "log":
            if method != "GET":
                raise not_allowed
            return self._log(namespace, name, query)
        if method == "GET" and name:
            key = (plural, namespace, name)
            if key not in self.objects:
                raise not_found(resource, name)
            self.reads[key] = self.reads.get(key, 0) + 1
            self.reconcile(key)
            return _json(self.objects[key])
        if method == "GET" and verb == "list":
            return _json(self._list(resource, namespace, query.get("labelSelector", "")))
        if method == "DELETE" and name:
            return _json(self.delete(resource, namespace, name))
        if method == "PATCH" and name and resource.applyable:
            return self._patch(user, resource, namespace, name, query, headers, body)
        raise not_allowed

    def _list(self, resource: Resource, namespace: str, selector: str) -> dict[str, Any]:
        reqs = parse_selector(selector) if selector else []
        items = [
            copy.deepcopy(o)
            for (p, ns, _), o in sorted(self.objects.items())
            if p == resource.plural
            and (not namespace or ns == namespace)
            and selector_matches(reqs, (o.get("metadata") or {}).get("labels") or {})
        ]
        return {
            "apiVersion": resource.api_version,
            "kind": f"{resource.kind}List",
            "metadata": {"resourceVersion": str(self._version)},
            "items": items,
        }

    def _patch(
        self, user: str, resource: Resource, namespace: str, name: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> Response:
        content_type = headers.get("content-type", "").split(";")[0].strip()
        if content_type != "application/apply-patch+yaml":
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml",
                {},
            )
        manager = query.get("fieldManager", "")
        force = parse_bool(query["force"], "force") if "force" in query else False
        if not manager:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
                {
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [
                        {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}
                    ],
                },
            )
        if len(manager) > 128:
            raise ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Too long: may not be more than 128 bytes',
                {
                    "group": "meta.k8s.io",
                    "kind": "PatchOptions",
                    "causes": [
                        {"reason": "FieldValueTooLong", "message": "Too long: may not be more than 128 bytes", "field": "fieldManager"}
                    ],
                },
            )
        dry_run = query.get("dryRun") == "All"
        try:
            obj = yaml.safe_load(body) if body else None
        except yaml.YAMLError as exc:
            raise bad_request(f"error decoding patch: {exc}") from None
        if obj is None:
            obj = {}
        result, created, warnings = self.apply(resource, namespace, name, obj, manager, force, user, dry_run)
        response = _json(result, 201 if created and not dry_run else 200)
        for warning in warnings:
            response.headers.append("Warning", f"299 - {json.dumps(warning)}")
        return response

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> Response:
        pod = self.objects.get(("pods", namespace, name))
        if pod is None:
            raise not_found(BY_PLURAL["pods"], name)
        names = [c["name"] for c in pod["spec"]["containers"]]
        container = query.get("container", "")
        if not container:
            default = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
            if len(names) != 1:
                raise bad_request(f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]")
            container = default or names[0]
        if container not in names:
            raise bad_request(f"container {container} is not valid for pod {name}")
        waiting = next(
            (
                c["state"]["waiting"]
                for c in pod["status"].get("containerStatuses", [])
                if c["name"] == container and "waiting" in c.get("state", {})
            ),
            None,
        )
        if waiting is not None:
            # https://github.com/kubernetes/kubernetes/blob/master/pkg/registry/core/pod/strategy.go  validateContainer
            raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {waiting["reason"]}')
        # A line is logged when add_pod gave it or when this API first serves it (a test appends
        # lines to pod_logs); sinceSeconds and timestamps go by that time.
        lines = self.pod_logs.get((namespace, name, container), "").splitlines(keepends=True)
        times = self.pod_log_times.setdefault((namespace, name, container), [])
        times.extend([time.time()] * (len(lines) - len(times)))
        logged = list(zip(times, lines))
        if "sinceSeconds" in query:
            logged = [(t, line) for t, line in logged if t >= time.time() - int(query["sinceSeconds"])]
        if "tailLines" in query:
            try:
                tail = int(query["tailLines"])
            except ValueError:
                raise bad_request(f'strconv.ParseInt: parsing "{query["tailLines"]}": invalid syntax') from None
            logged = logged[-tail:] if tail > 0 else []
        if query.get("timestamps") == "true":  # RFC3339Nano, as Go writes it: trailing zeros of the fraction dropped
            logged = [
                (t, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}".rstrip("0").rstrip(".") + "Z " + line)
                for t, line in logged
            ]
        return Response("".join(line for _, line in logged), media_type="text/plain")


def _json(obj: Any, code: int = 200) -> Response:
    return Response(json.dumps(obj), status_code=code, media_type="application/json")


def _strip_system(obj: dict[str, Any] | None) -> dict[str, Any]:
    if obj is None:
        return {}
    out = {k: copy.deepcopy(v) for k, v in obj.items() if k != "status"}
    out["metadata"] = {k: copy.deepcopy(v) for k, v in (obj.get("metadata") or {}).items() if k not in SYSTEM_METADATA}
    return out


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def _conditions(*conds: tuple[str, str, str, str]) -> list[dict[str, Any]]:
    """Knative's conditions, sorted by type, with the fields it sets."""
    out = []
    for kind, status, reason, message in sorted(conds):
        cond: dict[str, Any] = {"type": kind, "status": status, "lastTransitionTime": now()}
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        out.append(cond)
    return out


def _digest(image: str) -> str:
    if "@sha256:" in image:
        return image
    import hashlib

    return image.split(":")[0] + "@sha256:" + hashlib.sha256(image.encode()).hexdigest()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def ssa_apply(
    live: dict[str, Any],
    applied: dict[str, Any],
    managers: dict[str, Manager],
    manager: str,
    force: bool,
    schema: dict[str, Any],
    api_version: str,
) -> tuple[dict[str, Any], dict[str, Manager]]:
    """merge.Updater.Apply: merge the applied configuration, prune what the manager stopped
    applying (unless someone else owns it), then check conflicts against the other managers.
    https://github.com/kubernetes-sigs/structured-merge-diff/blob/master/merge/update.go  Updater.Apply / prune / update"""
    applied_set = leaves(tracked(applied), schema)
    last = managers.get(manager)
    last_set = last.fields if last and last.operation == "Apply" else set()
    merged = copy.deepcopy(live)
    for path, value in applied_set.items():
        set_path(merged, path, value)
    others: set[FieldPath] = set()
    for m, entry in managers.items():
        if m != manager:
            others |= entry.fields
    for path in sorted(last_set - set(applied_set) - others, key=len, reverse=True):
        if not any(path[: len(p)] == p or p[: len(path)] == path for p in applied_set):
            delete_path(merged, path)
    old_leaves, new_leaves = leaves(tracked(live), schema), leaves(tracked(merged), schema)
    changed = {p for p in new_leaves if p not in old_leaves or old_leaves[p] != new_leaves[p]}
    removed = set(old_leaves) - set(new_leaves)
    conflicts: dict[str, set[FieldPath]] = {}
    for m, entry in managers.items():
        if m == manager:
            continue
        hit = {p for p in entry.fields if any(c[: len(p)] == p or p[: len(c)] == c for c in changed)}
        if hit:
            conflicts[m] = hit
    if conflicts and not force:
        raise conflict_error({managers[m].identity(m): paths for m, paths in conflicts.items()})
    out = {}
    for m, entry in managers.items():
        if m == manager:
            continue
        fields = entry.fields - conflicts.get(m, set()) - removed
        if fields:
            out[m] = Manager(entry.operation, entry.api_version, fields, entry.time)
    out[manager] = Manager("Apply", api_version, set(applied_set), now())
    return merged, out


def ssa_update(
    live: dict[str, Any], new: dict[str, Any], managers: dict[str, Manager], manager: str, schema: dict[str, Any], api_version: str
) -> tuple[dict[str, Any], dict[str, Manager]]:
    """merge.Updater.Update: an update takes what it changed from everyone, without conflicts."""
    old_leaves, new_leaves = leaves(tracked(live), schema), leaves(tracked(new), schema)
    changed = {p for p in new_leaves if p not in old_leaves or old_leaves[p] != new_leaves[p]}
    removed = set(old_leaves) - set(new_leaves)
    out = {}
    for m, entry in managers.items():
        fields = {p for p in entry.fields - removed if not any(c[: len(p)] == p or p[: len(c)] == c for c in changed)}
        if m == manager:
            continue
        if fields:
            out[m] = Manager(entry.operation, entry.api_version, fields, entry.time)
    mine = (managers[manager].fields - removed if manager in managers else set()) | changed
    if mine:
        out[manager] = Manager("Update", api_version, mine, now())
    return new, out


def conflict_error(conflicts: dict[str, set[FieldPath]]) -> ApiError:
    """internal.NewConflictError / getConflictMessage"""
    causes, flat = [], []
    for identity in sorted(conflicts):
        for path in sorted(conflicts[identity], key=smd_path):
            causes.append({"reason": "FieldManagerConflict", "message": f"conflict with {identity}", "field": smd_path(path)})
            flat.append((identity, smd_path(path)))
    if len(flat) == 1:
        message = f"Apply failed with 1 conflict: conflict with {flat[0][0]}: {flat[0][1]}"
    else:
        lines = []
        for identity in sorted(conflicts):
            lines.append(f"conflicts with {identity}:")
            lines += [f"- {smd_path(p)}" for p in sorted(conflicts[identity], key=smd_path)]
        message = f"Apply failed with {len(flat)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


# ---------------------------------------------------------------------------------------------
# Serving it
# ---------------------------------------------------------------------------------------------


class FakeServer:
    """Serves a FakeCluster on a loopback port from a background thread."""

    def __init__(self, cluster: FakeCluster, port: int) -> None:
        self.cluster = cluster
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(cluster.app(), host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    def kubeconfig(self, path: Any, as_platform: bool = False, namespace: str | None = None) -> Any:
        """Write a kubeconfig: the admin user `tester` (default namespace "default"), or with
        `as_platform` the platform's service account token (default namespace "lepton")."""
        user, token = ("lepton-platform", SA_TOKEN) if as_platform else ("tester", TOKEN)
        namespace = namespace or (INSTALL_NAMESPACE if as_platform else "default")
        Path(path).write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "current-context": "fake",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": user, "user": {"token": token}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": user, "namespace": namespace}}],
                }
            )
        )
        return path
