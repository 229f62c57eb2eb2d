"""What Knative's webhooks check and its CRD schemas do not: annotation values and ranges,
DNS-1123 names, label syntax, backoff policies, ISO-8601 durations, filter dialects and
attribute names, cron schedules and time zones, `data` vs `dataBase64`.
"""

from __future__ import annotations

import re
from typing import Any, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
ISO_DURATION = re.compile(r"^P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?$")
GO_DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms))+$")
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
ATTRIBUTE = re.compile(r"^[a-z][a-z0-9]*$")
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")
AUTOSCALING = "autoscaling.knative.dev/"
CLASSES = ("kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev")
MAX_REVISION_TIMEOUT = 600  # Knative's default max-revision-timeout-seconds


def go_seconds(value: str) -> float | None:
    if not GO_DURATION.match(value):
        return None
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    return sum(float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ms|h|m|s)", value))


def rule_errors(obj: dict[str, Any]) -> Iterator[str]:
    """Each rule `obj` breaks, as 'field.path: message'."""
    meta = obj.get("metadata", {})
    yield from _name("metadata.name", meta.get("name"))
    if "namespace" in meta:
        yield from _name("metadata.namespace", meta["namespace"])
    yield from _labels("metadata.labels", meta.get("labels", {}))
    spec = obj.get("spec", {})
    check = {"Service": _service, "Trigger": _trigger, "PingSource": _pingsource}.get(obj.get("kind", ""))
    if check:
        yield from check(meta.get("name", ""), spec)


def _name(where: str, name: Any) -> Iterator[str]:
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        yield f"{where}: {name!r} is not a DNS-1123 label (lower-case letters, digits, '-', at most 63)"


def _labels(where: str, labels: dict[str, Any]) -> Iterator[str]:
    for key, value in labels.items():
        if not LABEL_KEY.match(key):
            yield f"{where}[{key}]: not a valid label key"
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            yield f"{where}[{key}]: {value!r} is not a valid label value (at most 63 of A-Z a-z 0-9 - _ .)"


def _service(name: str, spec: dict[str, Any]) -> Iterator[str]:
    template = spec.get("template", {})
    tmeta = template.get("metadata", {})
    rev = tmeta.get("name")
    if rev is not None and (not rev.startswith(f"{name}-") or not DNS_LABEL.match(rev)):
        yield f"spec.template.metadata.name: {rev!r} must be a DNS-1123 label starting with '{name}-'"
    yield from _labels("spec.template.metadata.labels", tmeta.get("labels", {}))
    yield from _autoscaling("spec.template.metadata.annotations", tmeta.get("annotations", {}))
    pod = template.get("spec", {})
    cc = pod.get("containerConcurrency")
    if isinstance(cc, int) and not 0 <= cc <= 1000:
        yield f"spec.template.spec.containerConcurrency: {cc} is outside 0..1000"
    timeout = pod.get("timeoutSeconds")
    if isinstance(timeout, int) and not 0 < timeout <= MAX_REVISION_TIMEOUT:
        yield f"spec.template.spec.timeoutSeconds: {timeout} is outside 1..{MAX_REVISION_TIMEOUT} (max-revision-timeout-seconds)"
    containers = pod.get("containers", [])
    if len(containers) != 1:
        yield f"spec.template.spec.containers: one serving container expected, got {len(containers)}"
    for i, container in enumerate(c for c in containers if isinstance(c, dict)):
        where = f"spec.template.spec.containers.{i}"
        names = [e.get("name") for e in container.get("env", [])]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            yield f"{where}.env: {dup!r} is set twice"
        resources = container.get("resources", {})
        for part in ("requests", "limits"):
            for resource, quantity in resources.get(part, {}).items():
                if not QUANTITY.match(str(quantity)):
                    yield f"{where}.resources.{part}.{resource}: {quantity!r} is not a Kubernetes quantity"
        gpu_request = resources.get("requests", {}).get("nvidia.com/gpu")
        if gpu_request is not None and gpu_request != resources.get("limits", {}).get("nvidia.com/gpu"):
            yield f"{where}.resources: nvidia.com/gpu must be set in limits (and requests, if given, equal to it)"
        for probe in ("readinessProbe", "livenessProbe"):
            path = container.get(probe, {}).get("httpGet", {}).get("path")
            if path is not None and not path.startswith("/"):
                yield f"{where}.{probe}.httpGet.path: {path!r} must start with '/'"


def _autoscaling(where: str, annotations: dict[str, Any]) -> Iterator[str]:
    def integer(key: str) -> int | None:
        value = annotations.get(AUTOSCALING + key)
        return int(value) if isinstance(value, str) and value.isdigit() else None

    for key, value in annotations.items():
        if not isinstance(value, str):
            yield f"{where}[{key}]: annotation values must be strings, got {value!r}"
            return
    for key in ("min-scale", "max-scale", "initial-scale"):
        if AUTOSCALING + key in annotations and integer(key) is None:
            yield f"{where}[{AUTOSCALING}{key}]: {annotations[AUTOSCALING + key]!r} is not a non-negative integer"
    low, high = integer("min-scale"), integer("max-scale")
    if low is not None and high and high < low:
        yield f"{where}[{AUTOSCALING}max-scale]: {high} is below min-scale {low}"
    cls = annotations.get(AUTOSCALING + "class")
    if cls is not None and cls not in CLASSES:
        yield f"{where}[{AUTOSCALING}class]: {cls!r} is not one of {', '.join(CLASSES)}"
    target = annotations.get(AUTOSCALING + "target")
    if target is not None:
        try:
            if float(target) < 0.01:
                yield f"{where}[{AUTOSCALING}target]: {target} is below 0.01"
        except ValueError:
            yield f"{where}[{AUTOSCALING}target]: {target!r} is not a number"
    window = annotations.get(AUTOSCALING + "window")
    if window is not None:
        seconds = go_seconds(window)
        if seconds is None or not 6 <= seconds <= 3600:
            yield f"{where}[{AUTOSCALING}window]: {window!r} is not a duration between 6s and 1h"


def _filter(where: str, entry: Any) -> Iterator[str]:
    if not isinstance(entry, dict) or len(entry) != 1:
        yield f"{where}: each filter needs exactly one dialect of {', '.join(DIALECTS)}"
        return
    ((dialect, body),) = entry.items()
    if dialect not in DIALECTS:
        yield f"{where}: unknown filter dialect {dialect!r}"
    elif dialect in ("exact", "prefix", "suffix"):
        if not isinstance(body, dict) or not body:
            yield f"{where}.{dialect}: needs a non-empty map of attribute to value"
            return
        for name, value in body.items():
            if not ATTRIBUTE.match(name):
                yield f"{where}.{dialect}[{name}]: attribute names must match {ATTRIBUTE.pattern}"
            if not isinstance(value, str) or (dialect != "exact" and not value):
                yield f"{where}.{dialect}[{name}]: needs a non-empty string"
    elif dialect in ("all", "any"):
        if not isinstance(body, list) or not body:
            yield f"{where}.{dialect}: needs a non-empty list of filters"
            return
        for i, nested in enumerate(body):
            yield from _filter(f"{where}.{dialect}.{i}", nested)
    elif dialect == "not":
        yield from _filter(f"{where}.not", body)
    elif not isinstance(body, str) or not body.strip():
        yield f"{where}.cesql: needs an expression"


def _destination(where: str, dest: Any) -> Iterator[str]:
    if not isinstance(dest, dict) or not (dest.get("ref") or dest.get("uri")):
        yield f"{where}: needs a ref or a uri"
        return
    ref = dest.get("ref")
    if isinstance(ref, dict):
        for part in ("apiVersion", "kind", "name"):
            if not ref.get(part):
                yield f"{where}.ref.{part}: required"


def _trigger(name: str, spec: dict[str, Any]) -> Iterator[str]:
    if not spec.get("broker"):
        yield "spec.broker: required"
    for attr, value in spec.get("filter", {}).get("attributes", {}).items():
        if not ATTRIBUTE.match(attr):
            yield f"spec.filter.attributes[{attr}]: attribute names must match {ATTRIBUTE.pattern}"
        if not isinstance(value, str):
            yield f"spec.filter.attributes[{attr}]: values must be strings"
    for i, entry in enumerate(spec.get("filters", [])):
        yield from _filter(f"spec.filters.{i}", entry)
    yield from _destination("spec.subscriber", spec.get("subscriber"))
    delivery = spec.get("delivery", {})
    if "backoffPolicy" in delivery and delivery["backoffPolicy"] not in ("linear", "exponential"):
        yield f"spec.delivery.backoffPolicy: {delivery['backoffPolicy']!r} is not 'linear' or 'exponential'"
    for field in ("backoffDelay", "timeout"):
        if field in delivery and not ISO_DURATION.match(str(delivery[field])):
            yield f"spec.delivery.{field}: {delivery[field]!r} is not an ISO-8601 duration (e.g. PT0.2S)"
    if isinstance(delivery.get("retry"), int) and delivery["retry"] < 0:
        yield "spec.delivery.retry: must not be negative"
    if "deadLetterSink" in delivery:
        yield from _destination("spec.delivery.deadLetterSink", delivery["deadLetterSink"])


def _pingsource(name: str, spec: dict[str, Any]) -> Iterator[str]:
    from croniter import croniter

    schedule = spec.get("schedule", "")
    if len(str(schedule).split()) != 5 or not croniter.is_valid(schedule):
        yield f"spec.schedule: {schedule!r} is not a 5-field cron schedule (PingSource has no seconds field)"
    if "timezone" in spec:
        try:
            ZoneInfo(spec["timezone"])
        except (ZoneInfoNotFoundError, ValueError):
            yield f"spec.timezone: {spec['timezone']!r} is not an IANA time zone"
    if "data" in spec and "dataBase64" in spec:
        yield "spec: data and dataBase64 are mutually exclusive"
    yield from _destination("spec.sink", spec.get("sink"))
