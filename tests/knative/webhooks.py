"""Knative's admission webhooks for the fake Kubernetes API (tests/knative/fake_api.py).

Each rule here is re-written from the Go source of the Knative release Lepton targets, never from
Lepton's own code: knative/serving knative-v1.23.0 and knative/eventing knative-v1.22.2 (the
newest eventing tag in the snapshot), and the knative.dev/pkg, robfig/cron, rickb777/date and
cloudevents/sdk-go code they vendor. Every function names the Go function it mirrors with a link.

What a cluster does, in order, and what this module supplies:
  1. the defaulting webhooks (`webhook.serving.knative.dev`, `webhook.eventing.knative.dev`) decode
     the object into Knative's Go types (eventing refuses unknown fields) and fill in defaults:
     `decode_errors`, `default_*`. The defaults are applied to a copy for validation only: the
     fake stores what the client applied (plus CRD schema defaults), see the report in the module
     `fake_api`.
  2. the validating webhooks (`validation.webhook.serving.knative.dev`,
     `validation.webhook.eventing.knative.dev`) call the type's `Validate`: `validate_*`, which
     return a `FieldError` (or None) formatted exactly as knative.dev/pkg/apis.FieldError.Error().

`admit(kind, new, old, namespace)` runs both for one object and returns None or a `Denial`
with the webhook name and the text the API server puts after `admission webhook "<name>" denied
the request: `.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

SERVING_DEFAULTING = "webhook.serving.knative.dev"
SERVING_VALIDATION = "validation.webhook.serving.knative.dev"
EVENTING_DEFAULTING = "webhook.eventing.knative.dev"
EVENTING_VALIDATION = "validation.webhook.eventing.knative.dev"

SERVING = "https://github.com/knative/serving/blob/knative-v1.23.0"
EVENTING = "https://github.com/knative/eventing/blob/knative-v1.22.2"

# ---------------------------------------------------------------------------------------------
# knative.dev/pkg/apis.FieldError
# https://github.com/knative/serving/blob/knative-v1.23.0/vendor/knative.dev/pkg/apis/field_error.go
# ---------------------------------------------------------------------------------------------

ERROR_LEVEL, WARNING_LEVEL = 0, 1
CURRENT_FIELD = ""


class FieldError:
    """knative.dev/pkg/apis.FieldError; None plays Go's nil *FieldError."""

    __slots__ = ("message", "paths", "details", "level", "errors")

    def __init__(
        self, message: str = "", paths: Iterable[str] = (), details: str = "", level: int = ERROR_LEVEL, errors: Iterable[FieldError] = ()
    ) -> None:
        self.message, self.paths, self.details, self.level = message, list(paths), details, level
        self.errors = list(errors)

    def is_empty(self) -> bool:
        return not self.message and not self.details and not self.errors and not self.paths

    def __str__(self) -> str:
        return error_text(self)

    def __repr__(self) -> str:
        return f"FieldError({error_text(self)!r})"


FE = FieldError | None


def _empty(fe: FE) -> bool:
    return fe is None or fe.is_empty()


def also(fe: FE, *errs: FE) -> FE:
    """FieldError.Also"""
    if not errs or (len(errs) == 1 and _empty(errs[0])):
        return fe
    new = FieldError(fe.message, fe.paths, fe.details, fe.level, fe.errors) if not _empty(fe) else FieldError()
    new.errors.extend(e for e in errs if not _empty(e))
    return None if new.is_empty() else new


def _is_index(part: str) -> bool:
    return part.startswith("[") and part.endswith("]")


def _flatten(path: list[str]) -> str:
    """flatten: foo.[0].bar -> foo[0].bar"""
    out: list[str] = []
    for part in path:
        for p in part.split("."):
            if p == CURRENT_FIELD:
                continue
            if out and _is_index(p):
                out[-1] += p
            else:
                out.append(p)
    return ".".join(out)


def via_field(fe: FE, *prefix: str) -> FE:
    """FieldError.ViaField"""
    if fe is None:
        return None
    new: FE = FieldError(fe.message, [_flatten([*prefix, p]) for p in fe.paths], fe.details, fe.level)
    for e in fe.errors:
        new = also(new, via_field(e, *prefix))
    return new


def via_index(fe: FE, index: int) -> FE:
    return via_field(fe, f"[{index}]")


def via_field_index(fe: FE, name: str, index: int) -> FE:
    return via_field(via_index(fe, index), name)


def via_key(fe: FE, key: str) -> FE:
    return via_field(fe, f"[{key}]")


def at_level(fe: FE, level: int) -> FE:
    """FieldError.At"""
    if fe is None:
        return None
    new: FE = FieldError(fe.message, fe.paths, fe.details, level)
    for e in fe.errors:
        new = also(new, at_level(e, level))
    return new


def filter_level(fe: FE, level: int) -> FE:
    """FieldError.Filter"""
    if fe is None:
        return None
    new: FE = FieldError(fe.message, fe.paths, fe.details, fe.level) if fe.level == level else None
    for e in fe.errors:
        new = also(new, filter_level(e, level))
    return None if _empty(new) else new


def _normalized(fe: FE) -> list[FieldError]:
    if fe is None:
        return []
    out = [FieldError(fe.message, fe.paths, fe.details, fe.level)] if fe.message else []
    for e in fe.errors:
        out.extend(_normalized(e))
    return out


def wrapped_errors(fe: FE) -> list[FieldError]:
    """FieldError.WrappedErrors: merge() paths of equal (level, message, details), sorted."""
    merged: dict[tuple[int, str, str], FieldError] = {}
    for e in _normalized(fe):
        key = (e.level, e.message, e.details)
        if key in merged:
            merged[key].paths += [p for p in e.paths if p not in merged[key].paths]
        else:
            merged[key] = FieldError(e.message, e.paths, e.details, e.level)
    for e in merged.values():
        e.paths.sort()
    return sorted(merged.values(), key=lambda e: (e.message, e.details, e.level))


def error_text(fe: FE) -> str:
    """FieldError.Error"""
    lines = []
    for e in wrapped_errors(fe):
        text = f"{e.message}: {', '.join(e.paths)}"
        lines.append(text if not e.details else f"{text}\n{e.details}")
    return "\n".join(lines)


def err_missing_field(*paths: str) -> FieldError:
    return FieldError("missing field(s)", paths)


def err_disallowed_fields(*paths: str) -> FieldError:
    return FieldError("must not set the field(s)", paths)


def err_invalid_value(value: Any, path: str, *details: str) -> FieldError:
    return FieldError(f"invalid value: {go_v(value)}", [path], ", ".join(details))


def err_invalid_array_value(value: Any, name: str, index: int) -> FE:
    return via_field_index(err_invalid_value(value, CURRENT_FIELD), name, index)


def err_generic(diagnostic: str, *paths: str) -> FieldError:
    return FieldError(diagnostic, paths)


def err_missing_one_of(*paths: str) -> FieldError:
    return FieldError("expected exactly one, got neither", paths)


def err_multiple_one_of(*paths: str) -> FieldError:
    return FieldError("expected exactly one, got both", paths)


def err_invalid_key_name(key: str, path: str, *details: str) -> FieldError:
    return FieldError(f"invalid key name {go_quote(key)}", [path], ", ".join(details))


def err_out_of_bounds(value: Any, lower: Any, upper: Any, path: str) -> FieldError:
    return FieldError(f"expected {go_v(lower)} <= {go_v(value)} <= {go_v(upper)}", [path])


# ---------------------------------------------------------------------------------------------
# Go formatting and parsing: fmt %v / %q, strconv, time.ParseDuration, time.Duration.String
# ---------------------------------------------------------------------------------------------


class GoError(ValueError):
    """An error value from a Go function; str() is its Error() text."""


class GoPanic(Exception):
    """Where the Go code panics (an index out of range): the webhook's HTTP handler dies, the API
    server's call fails with EOF and, with failurePolicy Fail, the request is refused with 500."""


@dataclass(frozen=True)
class Duration:
    """time.Duration in nanoseconds; %v prints Duration.String()."""

    ns: int

    def __str__(self) -> str:
        return duration_string(self.ns)


SECOND = 1_000_000_000


def go_quote(s: str) -> str:
    """strconv.Quote (for the printable strings these messages carry)."""
    out = ['"']
    for ch in s:
        out.append(
            {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\v": "\\v"}.get(ch)
            or (ch if ch.isprintable() else f"\\u{ord(ch):04x}")
        )
    out.append('"')
    return "".join(out)


def go_float(f: float) -> str:
    """fmt %v (= %g, shortest) of a float64: strconv.FormatFloat(f, 'g', -1, 64) switches to the
    exponent form when the decimal exponent is < -4 or >= 6 (eprec is 6 for the shortest form)."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "0"
    sign, digits, exp = Decimal(repr(f)).normalize().as_tuple()
    ds = "".join(map(str, digits))
    nd, dp = len(ds), len(ds) + exp
    neg = "-" if sign else ""
    x = dp - 1
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{neg}{ds}{'0' * (dp - nd)}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def go_v(value: Any) -> str:
    """fmt %v for the value kinds these messages print."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)


_INT = re.compile(r"[+-]?[0-9]+")


def go_parse_int(s: str, bits: int = 64, fn: str = "ParseInt") -> int:
    """strconv.ParseInt(s, 10, bits) / strconv.Atoi"""
    if not _INT.fullmatch(s):
        raise GoError(f"strconv.{fn}: parsing {go_quote(s)}: invalid syntax")
    value = int(s)
    if not -(1 << (bits - 1)) <= value < (1 << (bits - 1)):
        raise GoError(f"strconv.{fn}: parsing {go_quote(s)}: value out of range")
    return value


def go_atoi(s: str) -> int:
    return go_parse_int(s, 64, "Atoi")


_FLOAT = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", re.IGNORECASE)


def go_parse_float(s: str) -> float:
    """strconv.ParseFloat(s, 64) for decimal input (no hex floats, no underscores)."""
    if not _FLOAT.fullmatch(s):
        raise GoError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    value = float(s)
    if value in (float("inf"), float("-inf")) and "inf" not in s.lower():
        raise GoError(f"strconv.ParseFloat: parsing {go_quote(s)}: value out of range")
    return value


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}


def go_parse_duration(text: str) -> int:
    """time.ParseDuration, in nanoseconds.
    https://cs.opensource.google/go/go/+/refs/tags/go1.25.0:src/time/format.go  ParseDuration"""
    orig, s, total, neg = text, text, 0, False
    invalid = GoError(f"time: invalid duration {go_quote(orig)}")
    if s and s[0] in "-+":
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise invalid
    while s:
        if not (s[0] == "." or s[0].isdigit()):
            raise invalid
        m = re.match(r"[0-9]*", s)
        whole_txt, s = m.group(0), s[m.end() :]
        pre = bool(whole_txt)
        frac_txt, post = "", False
        if s.startswith("."):
            m = re.match(r"[0-9]*", s[1:])
            frac_txt, s = m.group(0), s[1 + m.end() :]
            post = bool(frac_txt)
        if not pre and not post:
            raise invalid
        m = re.match(r"[^0-9.]*", s)
        unit_txt, s = m.group(0), s[m.end() :]
        if not unit_txt:
            raise GoError(f"time: missing unit in duration {go_quote(orig)}")
        if unit_txt not in _UNITS:
            raise GoError(f"time: unknown unit {go_quote(unit_txt)} in duration {go_quote(orig)}")
        unit = _UNITS[unit_txt]
        value = int(whole_txt or "0") * unit
        if frac_txt:
            value += int(Decimal("0." + frac_txt) * unit)
        total += value
        if total > (1 << 63) - (0 if neg else 1):
            raise invalid
    return -total if neg else total


def _frac(v: int, prec: int) -> str:
    whole, rest = divmod(v, 10**prec)
    digits = f"{rest:0{prec}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


def duration_string(ns: int) -> str:
    """time.Duration.String"""
    if ns == 0:
        return "0s"
    u = abs(ns)
    if u < SECOND:
        text = f"{u}ns" if u < 1_000 else (_frac(u, 3) + "µs" if u < 1_000_000 else _frac(u, 6) + "ms")
    else:
        minutes, rest = divmod(u, 60 * SECOND)
        text = _frac(rest, 9) + "s"
        if minutes:
            hours, minutes = divmod(minutes, 60)
            text = f"{minutes}m{text}"
            if hours:
                text = f"{hours}h{text}"
    return ("-" if ns < 0 else "") + text


def go_load_location(name: str) -> None:
    """time.LoadLocation: raises GoError as Go words it."""
    if name in ("", "UTC", "Local"):
        return
    if ".." in name or name[0] in "/\\":
        raise GoError("time: invalid location name")
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise GoError(f"unknown time zone {name}") from None


def go_json_object_error(text: str) -> str | None:
    """json.Unmarshal([]byte(text), &map[string]interface{}) error text, or None.
    Syntax error texts are approximations of encoding/json's."""

    def reject(c: str) -> None:
        raise ValueError(c)

    try:
        value = json.loads(text, parse_constant=reject)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            return "unexpected end of JSON input"
        ch = text[exc.pos]
        if exc.msg.startswith("Extra data"):
            return f"invalid character {_go_char(ch)} after top-level value"
        return f"invalid character {_go_char(ch)} looking for beginning of value"
    except ValueError:
        return "invalid character 'N' looking for beginning of value"
    if value is None or isinstance(value, dict):
        return None
    kind = {bool: "bool", str: "string", list: "array", int: "number", float: "number"}[type(value)]
    return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"


def _go_char(ch: str) -> str:
    return "'\\''" if ch == "'" else ("'\"'" if ch == '"' else f"'{ch}'")


# ---------------------------------------------------------------------------------------------
# k8s.io/apimachinery/pkg/util/validation
# https://github.com/knative/serving/blob/knative-v1.23.0/vendor/k8s.io/apimachinery/pkg/util/validation/validation.go
# ---------------------------------------------------------------------------------------------


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """RegexError (note the double space before ' or ', as in Go)."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{example}', "
    return msg + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
C_IDENTIFIER_FMT = "[A-Za-z_][A-Za-z0-9_]*"
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"


def is_dns1123_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not re.fullmatch(DNS1123_LABEL_FMT, value):
        errs.append(
            regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                "and must start and end with an alphanumeric character",
                DNS1123_LABEL_FMT,
                "my-name",
                "123-abc",
            )
        )
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not re.fullmatch(DNS1123_SUBDOMAIN_FMT, value):
        errs.append(
            regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
                DNS1123_SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not re.fullmatch(DNS1035_LABEL_FMT, value):
        errs.append(
            regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character",
                DNS1035_LABEL_FMT,
                "my-name",
                "abc-123",
            )
        )
    return errs


def name_is_dns1035_label(name: str, prefix: bool) -> list[str]:
    """k8s.io/apimachinery/pkg/api/validation NameIsDNS1035Label (maskTrailingDash for prefixes)."""
    if prefix and len(name) > 1 and name.endswith("-"):
        name = name[:-2] + "a"
    return is_dns1035_label(name)


def is_qualified_name(value: str) -> list[str]:
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += ["prefix part " + m for m in is_dns1123_subdomain(prefix)]
    else:
        return [
            "a qualified name "
            + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if name and not re.fullmatch(QUALIFIED_NAME_FMT, name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def is_valid_label_value(value: str) -> list[str]:
    errs = [max_len_error(63)] if len(value) > 63 else []
    if not re.fullmatch(LABEL_VALUE_FMT, value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def is_c_identifier(value: str) -> list[str]:
    if re.fullmatch(C_IDENTIFIER_FMT, value):
        return []
    return [
        regex_error(
            "a valid C identifier must start with alphabetic character or '_', followed by a string of alphanumeric characters or '_'",
            C_IDENTIFIER_FMT,
            "my_name",
            "MY_NAME",
            "MyName",
        )
    ]


def is_config_map_key(value: str) -> list[str]:
    errs = [max_len_error(253)] if len(value) > 253 else []
    if not re.fullmatch(CONFIG_KEY_FMT, value):
        errs.append(
            regex_error(
                "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                CONFIG_KEY_FMT,
                "key.name",
                "KEY_NAME",
                "key-name",
            )
        )
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


# ---------------------------------------------------------------------------------------------
# Knative Serving configuration (config-defaults, config-features, config-autoscaler defaults)
# https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/config/defaults.go  defaultDefaultsConfig
# https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/config/features.go  defaultFeaturesConfig
# https://github.com/knative/serving/blob/knative-v1.23.0/pkg/autoscaler/config/config.go  defaultConfig
# https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/feature/features.go  newDefaults
# ---------------------------------------------------------------------------------------------

ENABLED, DISABLED, ALLOWED = "Enabled", "Disabled", "Allowed"


@dataclass
class KnativeConfig:
    """The ConfigMaps the webhooks read; defaults are Knative's out-of-the-box values."""

    revision_timeout_seconds: int = 300
    max_revision_timeout_seconds: int = 600
    container_concurrency_max_limit: int = 1000
    allow_container_concurrency_zero: bool = True
    user_container_name: str = "user-container"
    max_scale_limit: int = 0
    allow_zero_initial_scale: bool = False
    pod_autoscaler_class: str = "kpa.autoscaling.knative.dev"
    serving_features: dict[str, str] = field(
        default_factory=lambda: {
            "multi-container": ENABLED,
            "multi-container-probing": DISABLED,
            "kubernetes.podspec-affinity": DISABLED,
            "kubernetes.podspec-topologyspreadconstraints": DISABLED,
            "kubernetes.podspec-hostaliases": DISABLED,
            "kubernetes.podspec-fieldref": DISABLED,
            "kubernetes.podspec-nodeselector": DISABLED,
            "kubernetes.podspec-runtimeclassname": DISABLED,
            "kubernetes.podspec-securitycontext": DISABLED,
            "kubernetes.podspec-shareprocessnamespace": DISABLED,
            "kubernetes.podspec-hostipc": DISABLED,
            "kubernetes.podspec-hostpid": DISABLED,
            "kubernetes.podspec-hostnetwork": DISABLED,
            "kubernetes.podspec-priorityclassname": DISABLED,
            "kubernetes.podspec-schedulername": DISABLED,
            "kubernetes.containerspec-addcapabilities": DISABLED,
            "kubernetes.podspec-tolerations": DISABLED,
            "kubernetes.podspec-emptydir": ENABLED,
            "kubernetes.podspec-hostpath": DISABLED,
            "kubernetes.podspec-volumes-mount-propagation": DISABLED,
            "kubernetes.podspec-volumes-csi": DISABLED,
            "kubernetes.podspec-volumes-ephemeral": DISABLED,
            "kubernetes.podspec-volumes-image": DISABLED,
            "kubernetes.podspec-persistent-volume-claim": DISABLED,
            "kubernetes.podspec-persistent-volume-write": DISABLED,
            "kubernetes.podspec-init-containers": DISABLED,
            "kubernetes.podspec-dnspolicy": DISABLED,
            "kubernetes.podspec-dnsconfig": DISABLED,
            "secure-pod-defaults": DISABLED,
        }
    )
    eventing_features: dict[str, str] = field(
        default_factory=lambda: {
            "kreference-group": DISABLED,
            "delivery-retryafter": DISABLED,
            "delivery-timeout": ENABLED,
            "cross-namespace-event-links": DISABLED,
        }
    )
    ping_data_max_size: int = -1

    def serving(self, flag: str) -> str:
        return self.serving_features.get(flag, DISABLED)

    def eventing(self, flag: str) -> bool:
        return self.eventing_features.get(flag) == ENABLED


DEFAULT_CONFIG = KnativeConfig()


@dataclass
class Denial:
    """An admission webhook's refusal: the API server answers 400 BadRequest with
    `admission webhook "<webhook>" denied the request: <message>`."""

    webhook: str
    message: str
    code: int = 400
    reason: str = "BadRequest"

    @property
    def text(self) -> str:
        if self.code == 500:
            return f"Internal error occurred: {self.message}"
        return f'admission webhook "{self.webhook}" denied the request: {self.message}'


WEBHOOK_URLS = {
    SERVING_VALIDATION: "https://webhook.knative-serving.svc:443/resource-validation?timeout=10s",
    EVENTING_VALIDATION: "https://eventing-webhook.knative-eventing.svc:443/resource-validation?timeout=10s",
}


def panicked(webhook: str) -> Denial:
    """apiserver's webhook error for a handler that died: failurePolicy Fail turns it into a 500."""
    return Denial(
        webhook, f'failed calling webhook "{webhook}": failed to call webhook: Post "{WEBHOOK_URLS[webhook]}": EOF', 500, "InternalError"
    )


# ---------------------------------------------------------------------------------------------
# helpers over plain JSON objects (Go zero values for missing fields)
# ---------------------------------------------------------------------------------------------


def _d(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _set_fields(obj: Any) -> list[str]:
    """JSON names of the fields of a decoded Go struct that hold non-zero values."""
    if not isinstance(obj, dict):
        return []
    return sorted(k for k, v in obj.items() if v not in (None, "", 0, False, [], {}))


def check_disallowed(obj: Any, allowed: Iterable[str]) -> FE:
    """apis.CheckDisallowedFields(request, Mask(request)): the set fields the mask drops."""
    allowed = set(allowed)
    bad = [k for k in _set_fields(obj) if k not in allowed]
    return err_disallowed_fields(*bad) if bad else None


# ---------------------------------------------------------------------------------------------
# Knative Serving: defaulting
# ---------------------------------------------------------------------------------------------

REVISION_SPEC_FIELDS = ("containerConcurrency", "timeoutSeconds", "responseStartTimeoutSeconds", "idleTimeoutSeconds")


def default_revision_spec(spec: dict[str, Any], cfg: KnativeConfig, in_create: bool) -> None:
    """The parts of RevisionSpec.SetDefaults that change what validation sees.
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_defaults.go  RevisionSpec.SetDefaults"""
    if not spec.get("timeoutSeconds"):
        spec["timeoutSeconds"] = cfg.revision_timeout_seconds
    if spec.get("containerConcurrency") is None:
        spec["containerConcurrency"] = 0
    containers = spec.get("containers") or []
    names = {c.get("name") for c in containers if isinstance(c, dict)}
    # applyDefaultContainerNames
    suffix = 0
    for c in containers:
        if isinstance(c, dict) and not c.get("name"):
            name = cfg.user_container_name
            if len(containers) > 1 or name in names:
                while True:
                    name = f"{cfg.user_container_name}-{suffix}"
                    suffix += 1
                    if name not in names:
                        break
            c["name"] = name
    for c in containers:
        if not isinstance(c, dict):
            continue
        # applyUserContainerDefaultReadinessProbe
        if len(containers) == 1 or c.get("ports"):
            probe = c.setdefault("readinessProbe", {}) if c.get("readinessProbe") is None else c["readinessProbe"]
            if isinstance(probe, dict) and not any(probe.get(h) is not None for h in ("tcpSocket", "httpGet", "exec", "grpc")):
                probe["tcpSocket"] = {"port": 0}
        # applyReadinessProbeDefaults
        probe = c.get("readinessProbe")
        if isinstance(probe, dict):
            if not probe.get("successThreshold"):
                probe["successThreshold"] = 1
            if probe.get("periodSeconds"):
                if not probe.get("failureThreshold"):
                    probe["failureThreshold"] = 3
                if not probe.get("timeoutSeconds"):
                    probe["timeoutSeconds"] = 1
    if in_create and spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = False


def default_service(svc: dict[str, Any], cfg: KnativeConfig, in_create: bool) -> dict[str, Any]:
    """Service.SetDefaults on a copy: template defaults and the default traffic block.
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/service_defaults.go  Service.SetDefaults
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/route_defaults.go  RouteSpec.SetDefaults / TrafficTarget.SetDefaults"""
    svc = copy.deepcopy(svc)
    spec = svc.setdefault("spec", {}) if isinstance(svc.get("spec"), dict) or svc.get("spec") is None else svc["spec"]
    if not isinstance(spec, dict):
        return svc
    template = spec.setdefault("template", {}) if spec.get("template") is None else spec["template"]
    if isinstance(template, dict):
        tspec = template.setdefault("spec", {}) if template.get("spec") is None else template["spec"]
        if isinstance(tspec, dict):
            default_revision_spec(tspec, cfg, in_create)
    if not spec.get("traffic"):
        spec["traffic"] = [{"percent": 100, "latestRevision": True}]
    for target in spec["traffic"]:
        if isinstance(target, dict):
            if target.get("latestRevision") is None:
                target["latestRevision"] = not target.get("revisionName")
            if target.get("percent") is None:
                target["percent"] = 0
    return svc


# ---------------------------------------------------------------------------------------------
# Knative Serving: metadata and annotations
# ---------------------------------------------------------------------------------------------

AUTOSCALING = "autoscaling.knative.dev"
KPA, HPA = "kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"
WINDOW_MIN, WINDOW_MAX = 6 * SECOND, 3600 * SECOND


def _get(annotations: dict[str, str], *keys: str) -> tuple[str, str, bool]:
    """kmap.KeyPriority.Get
    https://github.com/knative/serving/blob/knative-v1.23.0/vendor/knative.dev/pkg/kmap/lookup.go  KeyPriority.Get"""
    for key in keys:
        if key in annotations:
            return key, annotations[key], True
    return keys[0], "", False


def validate_object_metadata(meta: dict[str, Any]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/vendor/knative.dev/pkg/apis/metadata_validation.go  ValidateObjectMetadata"""
    name, generate = meta.get("name") or "", meta.get("generateName") or ""
    if generate:
        msgs = name_is_dns1035_label(generate, True)
        if msgs:
            return FieldError(f"not a DNS 1035 label prefix: {go_v(msgs)}", ["generateName"])
    if name:
        msgs = name_is_dns1035_label(name, False)
        if msgs:
            return FieldError(f"not a DNS 1035 label: {go_v(msgs)}", ["name"])
    if not generate and not name:
        return FieldError("name or generateName is required", ["name"])
    return None


def validate_has_no_autoscaling_annotation(annotations: dict[str, str]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/metadata_validation.go  ValidateHasNoAutoscalingAnnotation"""
    errs: FE = None
    for key in annotations:
        if key.startswith(AUTOSCALING):
            errs = also(
                errs,
                err_invalid_key_name(
                    key, CURRENT_FIELD, 'autoscaling annotations must be put under "spec.template.metadata.annotations" to work'
                ),
            )
    return errs


def validate_rollout_duration(annotations: dict[str, str]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/metadata_validation.go  ValidateRolloutDurationAnnotation"""
    key, value, _ = _get(annotations, "serving.knative.dev/rollout-duration", "serving.knative.dev/rolloutDuration")
    return _validate_second_duration(key, value, "rollout-duration")


def _validate_second_duration(key: str, value: str, what: str) -> FE:
    if not value:
        return None
    try:
        d = go_parse_duration(value)
    except GoError:
        return err_invalid_value(value, key)
    if _round_second(d) != d:
        return FieldError(f"{what}={value} is not at second precision", [key])
    if d < 0:
        return FieldError(f"{what}={value} must be positive", [key])
    return None


def _round_second(d: int) -> int:
    """time.Duration.Round(time.Second): halves away from zero."""
    q, r = divmod(abs(d), SECOND)
    q += 1 if r * 2 >= SECOND else 0
    return q * SECOND * (1 if d >= 0 else -1)


def _get_int_ge0(annotations: dict[str, str], *keys: str) -> tuple[int, FE]:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/autoscaling/annotation_validation.go  getIntGE0"""
    key, value, ok = _get(annotations, *keys)
    if not ok:
        return 0, None
    try:
        i = go_parse_int(value, 32)
    except GoError as exc:
        if "out of range" in str(exc):
            return 0, err_out_of_bounds(value, 0, 2147483647, key)
        return 0, err_invalid_value(value, key)
    if i < 0:
        return 0, err_out_of_bounds(value, 0, 2147483647, key)
    return i, None


def validate_autoscaling_annotations(annotations: dict[str, str], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/autoscaling/annotation_validation.go  ValidateAnnotations
    (validateClass, validateMinMaxScale, validateFloats, validateWindow, validateLastPodRetention,
    validateScaleDownDelay, validateMetric, validateAlgorithm, validateInitialScale)"""
    a = annotations
    g = AUTOSCALING + "/"
    errs: FE = None
    # validateClass
    key, cls, ok = _get(a, g + "class")
    if ok and cls.endswith(".knative.dev") and cls not in (KPA, HPA):
        errs = also(errs, err_invalid_value(cls, key))
    # validateMinMaxScale
    mn, e1 = _get_int_ge0(a, g + "min-scale", g + "minScale")
    mx, e2 = _get_int_ge0(a, g + "max-scale", g + "maxScale")
    mm: FE = also(e1, e2)
    if mx != 0 and mx < mn:
        mm = also(mm, FieldError(f"max-scale={mx} is less than min-scale={mn}", [g + "max-scale", g + "min-scale"]))
    key, _, ok = _get(a, g + "max-scale", g + "maxScale")
    if ok and cfg.max_scale_limit:
        if mx > cfg.max_scale_limit:
            mm = also(mm, err_out_of_bounds(mx, 1, cfg.max_scale_limit, key))
        if mx == 0:
            mm = also(mm, FieldError(f"max-scale=0 (unlimited), must be less than {cfg.max_scale_limit}", [key]))
    key, value, ok = _get(a, g + "activation-scale")
    if ok:
        try:
            nz = go_parse_int(value, 32)
        except GoError:
            mm = also(mm, err_invalid_value(value, key))
        else:
            if mn > nz:
                mm = also(mm, FieldError(f"min-scale={mn} is greater than activation-scale={nz}", [key]))
            elif mx < nz and mx != 0:
                mm = also(mm, FieldError(f"max-scale={mx} is less than activation-scale={nz}", [key]))
            elif nz < 2:
                mm = also(mm, FieldError(f"activation-scale={nz} must be greater than 1", [key]))
    errs = also(errs, mm)
    # validateFloats
    fl: FE = None
    key, value, ok = _get(a, g + "panic-window-percentage", g + "panicWindowPercentage")
    if ok:
        try:
            fv = go_parse_float(value)
        except GoError:
            fl = also(fl, err_invalid_value(value, key))
        else:
            if fv < 1.0 or fv > 100.0:
                fl = err_out_of_bounds(value, 1.0, 100.0, key)  # sic: replaces, as in Go
    key, value, ok = _get(a, g + "panic-threshold-percentage", g + "panicThresholdPercentage")
    if ok:
        try:
            fv = go_parse_float(value)
        except GoError:
            fl = also(fl, err_invalid_value(value, key))
        else:
            if fv < 110.0 or fv > 1000.0:
                fl = also(fl, err_out_of_bounds(value, 110.0, 1000.0, key))
    key, value, ok = _get(a, g + "target")
    if ok:
        try:
            fv = go_parse_float(value)
        except GoError:
            fl = also(fl, err_invalid_value(value, key))
        else:
            if fv < 0.01:
                fl = also(fl, err_generic(f"target {value} should be at least {go_float(0.01)}", key))
    key, value, ok = _get(a, g + "target-utilization-percentage", g + "targetUtilizationPercentage")
    if ok:
        try:
            fv = go_parse_float(value)
        except GoError:
            fl = also(fl, err_invalid_value(value, key))
        else:
            if fv < 1 or fv > 100:
                fl = also(fl, err_out_of_bounds(value, 1, 100, key))
    key, value, ok = _get(a, g + "target-burst-capacity", g + "targetBurstCapacity")
    if ok:
        try:
            fv = go_parse_float(value)
            bad = fv < 0 and fv != -1
        except GoError:
            bad = True
        if bad:
            fl = also(fl, err_invalid_value(value, key))
    errs = also(errs, fl)
    # validateWindow (paths use the canonical key)
    _, value, ok = _get(a, g + "window")
    if ok:
        try:
            d = go_parse_duration(value)
        except GoError:
            errs = also(errs, err_invalid_value(value, g + "window"))
        else:
            if d < WINDOW_MIN or d > WINDOW_MAX:
                errs = also(errs, err_out_of_bounds(value, Duration(WINDOW_MIN), Duration(WINDOW_MAX), g + "window"))
            elif d - d % SECOND != d:
                errs = also(errs, err_generic("must be specified with at most second precision", g + "window"))
    # validateLastPodRetention
    key, value, ok = _get(a, g + "scale-to-zero-pod-retention-period", g + "scaleToZeroPodRetentionPeriod")
    if ok:
        try:
            d = go_parse_duration(value)
        except GoError:
            errs = also(errs, err_invalid_value(value, key))
        else:
            if d < 0 or d > WINDOW_MAX:
                errs = also(errs, err_out_of_bounds(value, Duration(0), Duration(WINDOW_MAX), key))
    # validateScaleDownDelay
    key, value, ok = _get(a, g + "scale-down-delay", g + "scaleDownDelay")
    if ok:
        try:
            d = go_parse_duration(value)
        except GoError:
            errs = also(errs, err_invalid_value(value, key))
        else:
            if d < 0 or d > WINDOW_MAX:
                errs = also(errs, err_out_of_bounds(value, Duration(0), Duration(WINDOW_MAX), key))
            elif _round_second(d) != d:
                errs = also(errs, err_generic("must be specified with at most second precision", key))
    # validateMetric
    _, metric, ok = _get(a, g + "metric")
    if ok:
        cls_value = cls if _get(a, g + "class")[2] else cfg.pod_autoscaler_class
        if (cls_value == KPA and metric not in ("concurrency", "rps")) or (cls_value == HPA and metric == ""):
            errs = also(errs, err_invalid_value(metric, g + "metric"))
    # validateAlgorithm
    if _get(a, g + "class")[1] == KPA:
        key, value, _ = _get(a, g + "metric-aggregation-algorithm", g + "metricAggregationAlgorithm")
        if value and value not in ("linear", "weighted-exponential", "weightedExponential"):
            errs = also(errs, err_invalid_value(value, key))
    # validateInitialScale
    key, value, ok = _get(a, g + "initial-scale", g + "initialScale")
    if ok:
        try:
            initial = go_atoi(value)
        except GoError:
            errs = also(errs, err_invalid_value(value, key))
        else:
            if initial < 0:
                errs = also(errs, err_invalid_value(value, key + " must be greater than 0"))
            elif not cfg.allow_zero_initial_scale and initial == 0:
                errs = also(errs, err_invalid_value(value, key + "=0 not allowed by cluster"))
    return errs


NETWORKING_ALLOWED = {
    "networking.knative.dev/ingress.class",
    "networking.knative.dev/certificate.class",
    "networking.knative.dev/disableAutoTLS",
    "networking.knative.dev/disable-external-domain-tls",
    "networking.knative.dev/httpOption",
    "networking.knative.dev/ingress-class",
    "networking.knative.dev/certificate-class",
    "networking.knative.dev/disable-auto-tls",
    "networking.knative.dev/http-protocol",
}


def validate_networking_annotations(annotations: dict[str, str]) -> FE:
    """https://github.com/knative/networking/blob/main/pkg/apis/networking/metadata_validation.go  ValidateAnnotations
    (vendored in serving knative-v1.23.0)"""
    errs: FE = None
    for key in annotations:
        if key not in NETWORKING_ALLOWED and key.startswith("networking.knative.dev"):
            errs = also(errs, err_invalid_key_name(key, CURRENT_FIELD))
    return errs


def validate_queue_sidecar_annotations(annotations: dict[str, str]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go  validateQueueSidecarResourceAnnotations"""
    errs: FE = None
    key, value, ok = _get(
        annotations, "queue.sidecar.serving.knative.dev/resource-percentage", "queue.sidecar.serving.knative.dev/resourcePercentage"
    )
    if ok:
        errs = at_level(
            via_key(
                err_generic(
                    "Queue proxy resource percentage annotation is deprecated. Please use the "
                    "available annotations to explicitly set resource values per service"
                ),
                key,
            ),
            WARNING_LEVEL,
        )
        try:
            fv = go_parse_float(value)
        except GoError:
            errs = also(errs, via_key(err_invalid_value(value, CURRENT_FIELD), key))
        else:
            if fv < 0.1 or fv > 100:
                errs = also(errs, via_key(err_out_of_bounds(fv, 0.1, 100.0, CURRENT_FIELD), key))
    for res in (
        "cpu-resource-request",
        "cpu-resource-limit",
        "memory-resource-request",
        "memory-resource-limit",
        "ephemeral-storage-resource-request",
        "ephemeral-storage-resource-limit",
    ):
        key, value, ok = _get(annotations, f"queue.sidecar.serving.knative.dev/{res}")
        if ok and not QUANTITY.fullmatch(value):
            errs = also(errs, via_key(err_invalid_value(value, CURRENT_FIELD), key))
    return errs


QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?")


def validate_revision_name(name: str, generate_name: str, parent: dict[str, Any]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go  validateRevisionName"""
    if generate_name:
        msgs = name_is_dns1035_label(generate_name, True)
        if msgs:
            return err_invalid_value(f"not a DNS 1035 label prefix: {go_v(msgs)}", "metadata.generateName")
    if name:
        msgs = name_is_dns1035_label(name, False)
        if msgs:
            return err_invalid_value(f"not a DNS 1035 label: {go_v(msgs)}", "metadata.name")
        prefix = (parent.get("name") or "") + "-"
        if not parent.get("name") and parent.get("generateName"):
            return err_disallowed_fields("metadata.name")
        if not name.startswith(prefix):
            return err_invalid_value(f"{go_quote(name)} must have prefix {go_quote(prefix)}", "metadata.name")
    return None


# ---------------------------------------------------------------------------------------------
# Knative Serving: the pod spec
# ---------------------------------------------------------------------------------------------

RESERVED_ENV_VARS = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}
RESERVED_SIDECAR_ENV_VARS = RESERVED_ENV_VARS - {"PORT"}
RESERVED_CONTAINER_NAMES = {"queue-proxy"}
# networking.BackendHTTPPort, BackendHTTP2Port, QueueAdminPort, AutoscalingQueueMetricsPort,
# UserQueueMetricsPort, runtime.ProfilingDefaultPort
RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
VALID_PORT_NAMES = {"h2c", "http1", ""}
RESERVED_PATHS = {"/", "/dev", "/dev/log"}
POD_FEATURE_FIELDS = {
    "affinity": "kubernetes.podspec-affinity",
    "topologySpreadConstraints": "kubernetes.podspec-topologyspreadconstraints",
    "hostAliases": "kubernetes.podspec-hostaliases",
    "nodeSelector": "kubernetes.podspec-nodeselector",
    "runtimeClassName": "kubernetes.podspec-runtimeclassname",
    "tolerations": "kubernetes.podspec-tolerations",
    "shareProcessNamespace": "kubernetes.podspec-shareprocessnamespace",
    "priorityClassName": "kubernetes.podspec-priorityclassname",
    "schedulerName": "kubernetes.podspec-schedulername",
    "initContainers": "kubernetes.podspec-init-containers",
    "dnsPolicy": "kubernetes.podspec-dnspolicy",
    "dnsConfig": "kubernetes.podspec-dnsconfig",
    "hostIPC": "kubernetes.podspec-hostipc",
    "hostPID": "kubernetes.podspec-hostpid",
    "hostNetwork": "kubernetes.podspec-hostnetwork",
}
VOLUME_FEATURES = {
    "emptyDir": "kubernetes.podspec-emptydir",
    "persistentVolumeClaim": "kubernetes.podspec-persistent-volume-claim",
    "hostPath": "kubernetes.podspec-hostpath",
    "csi": "kubernetes.podspec-volumes-csi",
    "ephemeral": "kubernetes.podspec-volumes-ephemeral",
    "image": "kubernetes.podspec-volumes-image",
}


def _pod_spec_mask(ps: dict[str, Any], cfg: KnativeConfig) -> list[str]:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/fieldmask.go  PodSpecMask"""
    allowed = ["serviceAccountName", "containers", "volumes", "imagePullSecrets", "enableServiceLinks"]
    if ps.get("automountServiceAccountToken") is False:
        allowed.append("automountServiceAccountToken")
    allowed += [f for f, flag in POD_FEATURE_FIELDS.items() if cfg.serving(flag) != DISABLED]
    if cfg.serving("kubernetes.podspec-securitycontext") != DISABLED or cfg.serving("secure-pod-defaults") != DISABLED:
        allowed.append("securityContext")
    return allowed


def validate_pod_spec(ps: dict[str, Any], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  ValidatePodSpec"""
    errs = check_disallowed({k: v for k, v in ps.items() if k not in REVISION_SPEC_FIELDS}, _pod_spec_mask(ps, cfg))
    containers = [c if isinstance(c, dict) else {} for c in ps.get("containers") or []]
    init_containers = [c if isinstance(c, dict) else {} for c in ps.get("initContainers") or []]
    errs = also(errs, via_field(validate_pod_security_context(ps.get("securityContext")), "securityContext"))
    for i, c in enumerate(containers):
        errs = also(
            errs,
            via_field_index(
                via_field(warn_default_security_context(ps.get("securityContext"), c.get("securityContext"), cfg), "securityContext"),
                "containers",
                i,
            ),
        )
    for i, c in enumerate(init_containers):
        errs = also(
            errs,
            via_field_index(
                via_field(warn_default_security_context(ps.get("securityContext"), c.get("securityContext"), cfg), "securityContext"),
                "initContainers",
                i,
            ),
        )
    mounted = {m.get("name") for c in init_containers + containers for m in c.get("volumeMounts") or [] if isinstance(m, dict)}
    volumes, verr = validate_volumes(ps.get("volumes") or [], mounted, cfg)
    errs = also(errs, via_field(verr, "volumes"))
    errs = also(errs, validate_init_containers(init_containers, containers, volumes, cfg))
    port, perr = validate_containers_ports(containers)
    errs = also(errs, via_field(perr, "containers[*]"))
    if not containers:
        errs = also(errs, err_missing_field("containers"))
    elif len(containers) == 1:
        errs = also(errs, via_field_index(validate_user_container(containers[0], volumes, port, cfg), "containers", 0))
    else:
        errs = also(errs, validate_containers(containers, volumes, port, cfg))
    account = ps.get("serviceAccountName") or ""
    if account:
        for msg in is_dns1123_subdomain(account):
            errs = also(errs, err_invalid_value(account, "serviceAccountName", msg))
    return errs


def validate_pod_security_context(sc: Any) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  ValidatePodSecurityContext (bounds)"""
    if not isinstance(sc, dict):
        return None
    errs: FE = None
    for name in ("runAsUser", "runAsGroup", "fsGroup"):
        value = sc.get(name)
        if isinstance(value, int) and not 0 <= value <= 2147483647:
            errs = also(errs, err_out_of_bounds(value, 0, 2147483647, name))
    return errs


def warn_default_security_context(psc: Any, sc: Any, cfg: KnativeConfig) -> FE:
    """Warnings only (the API server relays them as `Warning:` headers).
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  warnDefaultContainerSecurityContext"""
    sc = sc if isinstance(sc, dict) else {}
    psc = psc if isinstance(psc, dict) else {}
    if cfg.serving("secure-pod-defaults") in (ENABLED, "AllowRootBounded"):
        return None

    def insecure(path: str) -> FE:
        return at_level(
            err_generic("Kubernetes default value is insecure, Knative may default this to secure in a future release", path), WARNING_LEVEL
        )

    errs: FE = None
    if psc.get("runAsNonRoot") is None and sc.get("runAsNonRoot") is None:
        errs = also(errs, insecure("runAsNonRoot"))
    if sc.get("allowPrivilegeEscalation") is None:
        errs = also(errs, insecure("allowPrivilegeEscalation"))
    if sc.get("seccompProfile") is None and psc.get("seccompProfile") is None:
        errs = also(errs, insecure("seccompProfile"))
    elif not _d(psc, "seccompProfile", "type") and not _d(sc, "seccompProfile", "type"):
        errs = also(errs, insecure("seccompProfile.type"))
    caps = sc.get("capabilities")
    if caps is None:
        errs = also(errs, insecure("capabilities"))
    elif caps.get("drop") is None:
        errs = also(errs, insecure("capabilities.drop"))
    elif caps["drop"] and caps["drop"][0] == "all":
        errs = also(errs, at_level(err_invalid_value("all", "capabilities.drop", "Must be spelled as 'ALL'"), WARNING_LEVEL))
    return errs


def validate_volumes(vs: list[Any], mounted: set[str], cfg: KnativeConfig) -> tuple[dict[str, dict[str, Any]], FE]:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  ValidateVolumes / validateVolume"""
    volumes: dict[str, dict[str, Any]] = {}
    errs: FE = None
    for i, volume in enumerate(vs):
        volume = volume if isinstance(volume, dict) else {}
        name = volume.get("name") or ""
        if name in volumes:
            errs = also(errs, via_index(FieldError(f"duplicate volume name {go_quote(name)}", ["name"]), i))
        if name not in mounted:
            errs = also(errs, via_index(FieldError(f"volume with name {go_quote(name)} not mounted", ["name"]), i))
        errs = also(errs, via_index(_validate_volume(volume, cfg), i))
        volumes[name] = volume
    return volumes, errs


def _validate_volume(volume: dict[str, Any], cfg: KnativeConfig) -> FE:
    errs: FE = None
    pvc = volume.get("persistentVolumeClaim")
    if pvc is not None:
        claim = _d(pvc, "claimName") or ""
        if cfg.serving("kubernetes.podspec-persistent-volume-claim") != ENABLED:
            errs = also(errs, FieldError(f"Persistent volume claim support is disabled, but found persistent volume claim {claim}"))
        if not _d(pvc, "readOnly") and cfg.serving("kubernetes.podspec-persistent-volume-write") != ENABLED:
            errs = also(
                errs,
                FieldError(f"Persistent volume write support is disabled, but found persistent volume claim {claim} that is not read-only"),
            )
    for source, (label, flag) in {
        "image": ("Image", "kubernetes.podspec-volumes-image"),
        "emptyDir": ("EmptyDir", "kubernetes.podspec-emptydir"),
        "hostPath": ("HostPath", "kubernetes.podspec-hostpath"),
        "csi": ("CSI", "kubernetes.podspec-volumes-csi"),
        "ephemeral": ("Ephemeral", "kubernetes.podspec-volumes-ephemeral"),
    }.items():
        if volume.get(source) is not None and cfg.serving(flag) != ENABLED:
            errs = also(errs, FieldError(f"{label} volume support is disabled, but found {label} volume {volume.get('name') or ''}"))
    name = volume.get("name") or ""
    if not name:
        errs = err_missing_field("name")  # sic: replaces, as in Go
    elif is_dns1123_label(name):
        errs = err_invalid_value(name, "name")
    sources = [
        k
        for k in ("secret", "configMap", "projected", "emptyDir", "persistentVolumeClaim", "hostPath", "csi", "ephemeral", "image")
        if volume.get(k) is not None
    ]
    masked = [k for k in sources if k in ("secret", "configMap", "projected") or cfg.serving(VOLUME_FEATURES[k]) != DISABLED]
    bad = [k for k in sources if k not in masked]
    if bad:
        errs = also(errs, err_disallowed_fields(*bad))
    for k in ("secret", "configMap"):
        for j, item in enumerate(_d(volume, k, "items") or []):
            errs = also(errs, via_field_index(_validate_key_to_path(item), "items", j))
    for j, proj in enumerate(_d(volume, "projected", "sources") or []):
        errs = also(errs, via_field_index(_validate_projection(proj), "projected", j))
    if volume.get("emptyDir") is not None:
        medium = _d(volume, "emptyDir", "medium") or ""
        if medium not in ("", "Memory"):
            errs = also(errs, via_field(err_invalid_value(medium, "medium"), "emptyDir"))
    if not sources:
        paths = ["secret", "configMap", "projected"] + [
            k
            for k in ("emptyDir", "persistentVolumeClaim", "hostPath", "csi", "ephemeral", "image")
            if cfg.serving(VOLUME_FEATURES[k]) == ENABLED
        ]
        errs = also(errs, err_missing_one_of(*paths))
    elif len(sources) > 1:
        errs = also(errs, err_multiple_one_of(*sources))
    return errs


def _validate_key_to_path(item: Any) -> FE:
    item = item if isinstance(item, dict) else {}
    errs: FE = None
    if not item.get("key"):
        errs = also(errs, err_missing_field("key"))
    if not item.get("path"):
        errs = also(errs, err_missing_field("path"))
    return errs


def _validate_projection(proj: Any) -> FE:
    """validateProjectedVolumeSource"""
    proj = proj if isinstance(proj, dict) else {}
    specified = [k for k in ("secret", "configMap", "serviceAccountToken", "downwardAPI") if proj.get(k) is not None]
    errs: FE = None
    for k in ("secret", "configMap"):
        if proj.get(k) is not None:
            sub: FE = None if _d(proj, k, "name") else err_missing_field("name")
            for j, item in enumerate(_d(proj, k, "items") or []):
                sub = also(sub, via_field_index(_validate_key_to_path(item), "items", j))
            errs = also(errs, via_field(sub, k))
    if proj.get("serviceAccountToken") is not None and not _d(proj, "serviceAccountToken", "path"):
        errs = also(errs, via_field(err_missing_field("path"), "serviceAccountToken"))
    if not specified:
        errs = also(errs, err_missing_one_of("secret", "configMap", "serviceAccountToken", "downwardAPI"))
    elif len(specified) > 1:
        errs = also(errs, err_multiple_one_of(*specified))
    return errs


def validate_init_containers(
    containers: list[dict[str, Any]], others: list[dict[str, Any]], volumes: dict[str, Any], cfg: KnativeConfig
) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validateInitContainers"""
    if not containers:
        return None
    if cfg.serving("kubernetes.podspec-init-containers") != ENABLED:
        return FieldError(f"pod spec support for init-containers is off, but found {len(containers)} init containers")
    errs: FE = None
    names = {c.get("name") for c in others}
    for i, c in enumerate(containers):
        if c.get("name") in names:
            errs = also(
                errs, via_field_index(FieldError(f"duplicate container name {go_quote(c.get('name') or '')}", ["name"]), "containers", i)
            )
        sub: FE = None
        for probe in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
            if c.get(probe) is not None:
                sub = also(sub, FieldError("field not allowed in an init container", [probe]))
        errs = also(errs, via_field_index(also(sub, _validate_container(c, volumes, cfg, init=True)), "containers", i))
    return errs


def validate_containers(containers: list[dict[str, Any]], volumes: dict[str, Any], port: dict[str, Any], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validateContainers"""
    if cfg.serving("multi-container") != ENABLED:
        return FieldError(f"multi-container is off, but found {len(containers)} containers")
    errs: FE = None
    names: set[str] = set()
    for i, c in enumerate(containers):
        if c.get("name") in names:
            errs = also(
                errs, via_field_index(FieldError(f"duplicate container name {go_quote(c.get('name') or '')}", ["name"]), "containers", i)
            )
        else:
            names.add(c.get("name"))
        if not c.get("ports"):
            errs = also(errs, via_field_index(_validate_sidecar_container(c, volumes, cfg), "containers", i))
        else:
            errs = also(errs, via_field_index(validate_user_container(c, volumes, port, cfg), "containers", i))
    return errs


def validate_containers_ports(containers: list[dict[str, Any]]) -> tuple[dict[str, Any], FE]:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validateContainersPorts
    (only a single port across all containers)"""
    count, port = 0, {}
    for c in containers:
        ports = c.get("ports") or []
        if ports:
            count += len(ports)
            port = dict(ports[0]) if isinstance(ports[0], dict) else {}
    port.setdefault("name", "")
    if not port["name"]:
        port["name"] = "http"
    if not port.get("containerPort"):
        port["containerPort"] = 8080
    if count == 0 and len(containers) > 1:
        return port, err_missing_field("ports")
    if count > 1:
        return port, FieldError("more than one container port is set", ["ports"], "Only a single port is allowed across all containers")
    return port, None


def _validate_sidecar_container(c: dict[str, Any], volumes: dict[str, Any], cfg: KnativeConfig) -> FE:
    """validateSidecarContainer"""
    errs: FE = None
    if cfg.serving("multi-container-probing") != ENABLED:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if c.get(probe) is not None:
                # CheckDisallowedFields against an empty ProbeMask; the inline ProbeHandler's
                # fields report under the probe itself (its json tag has no name).
                handler = {"httpGet", "tcpSocket", "exec", "grpc"}
                bad = list(dict.fromkeys("" if k in handler else k for k in _set_fields(c[probe])))
                if bad:
                    errs = also(errs, via_field(err_disallowed_fields(*bad), probe))
    else:
        errs = also(errs, via_field(_validate_probe(c.get("livenessProbe"), None, False), "livenessProbe"))
        errs = also(errs, via_field(_validate_readiness_probe(c.get("readinessProbe"), None, False), "readinessProbe"))
        errs = also(errs, via_field(_validate_probe(c.get("startupProbe"), None, False), "startupProbe"))
    return also(errs, _validate_container(c, volumes, cfg, sidecar=True))


def validate_user_container(c: dict[str, Any], volumes: dict[str, Any], port: dict[str, Any], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  ValidateUserContainer:
    livenessProbe, readinessProbe and startupProbe are all allowed on the serving container."""
    errs = via_field(_validate_probe(c.get("livenessProbe"), port, True), "livenessProbe")
    errs = also(errs, via_field(_validate_readiness_probe(c.get("readinessProbe"), port, True), "readinessProbe"))
    errs = also(errs, via_field(_validate_probe(c.get("startupProbe"), port, True), "startupProbe"))
    return also(errs, _validate_container(c, volumes, cfg))


def _port_string(port: Any) -> str:
    return str(port) if port is not None else "0"


def _validate_probe(p: Any, port: dict[str, Any] | None, user: bool) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validateProbe"""
    if p is None:
        return None
    p = p if isinstance(p, dict) else {}
    errs: FE = None
    handlers = []
    for key, label in (("httpGet", "httpGet"), ("tcpSocket", "tcpSocket")):
        action = p.get(key)
        if action is None:
            continue
        handlers.append(label)
        probe_port = action.get("port") if isinstance(action, dict) else None
        if user:
            if isinstance(probe_port, str) and probe_port != "" and probe_port != port.get("name"):
                errs = also(errs, err_invalid_value(_port_string(probe_port), f"{key}.port", "Probe port must match container port"))
        elif probe_port in (None, "", 0):
            errs = also(errs, err_invalid_value(_port_string(probe_port), f"{key}.port", "Probe port must be specified"))
    if p.get("exec") is not None:
        handlers.append("exec")
    if p.get("grpc") is not None:
        handlers.append("gRPC")
    if not handlers:
        errs = also(errs, err_missing_one_of("httpGet", "tcpSocket", "exec", "grpc"))
    elif len(handlers) > 1:
        errs = also(errs, err_multiple_one_of(*handlers))
    return errs


def _validate_readiness_probe(p: Any, port: dict[str, Any] | None, user: bool) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validateReadinessProbe"""
    if p is None:
        return None
    errs = _validate_probe(p, port, user)
    p = p if isinstance(p, dict) else {}
    period, initial = p.get("periodSeconds") or 0, p.get("initialDelaySeconds") or 0
    success, failure, timeout = p.get("successThreshold") or 0, p.get("failureThreshold") or 0, p.get("timeoutSeconds") or 0
    if period < 0:
        errs = also(errs, err_out_of_bounds(period, 0, 2147483647, "periodSeconds"))
    if initial < 0:
        errs = also(errs, err_out_of_bounds(initial, 0, 2147483647, "initialDelaySeconds"))
    if success < 1:
        errs = also(errs, err_out_of_bounds(success, 1, 2147483647, "successThreshold"))
    if period == 0:
        if failure != 0:
            errs = also(errs, FieldError("failureThreshold is disallowed when periodSeconds is zero", ["failureThreshold"]))
        if timeout != 0:
            errs = also(errs, FieldError("timeoutSeconds is disallowed when periodSeconds is zero", ["timeoutSeconds"]))
    else:
        if timeout < 1:
            errs = also(errs, err_out_of_bounds(timeout, 1, 2147483647, "timeoutSeconds"))
        if failure < 1:
            errs = also(errs, err_out_of_bounds(failure, 1, 2147483647, "failureThreshold"))
    return errs


def _validate_container(c: dict[str, Any], volumes: dict[str, Any], cfg: KnativeConfig, sidecar: bool = False, init: bool = False) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go  validate (container)
    with ContainerMask / SecurityContextMask / CapabilitiesMask from fieldmask.go"""
    if not _set_fields(c):
        return err_missing_field(CURRENT_FIELD)
    errs = check_disallowed(
        c,
        (
            "name",
            "args",
            "command",
            "env",
            "workingDir",
            "envFrom",
            "image",
            "imagePullPolicy",
            "livenessProbe",
            "ports",
            "readinessProbe",
            "resources",
            "securityContext",
            "startupProbe",
            "terminationMessagePath",
            "terminationMessagePolicy",
            "volumeMounts",
        ),
    )
    name = c.get("name") or ""
    if name in RESERVED_CONTAINER_NAMES:
        errs = also(errs, FieldError(f"{go_quote(name)} is a reserved container name", ["name"]))
    reserved = RESERVED_SIDECAR_ENV_VARS if (sidecar or init) else RESERVED_ENV_VARS
    env_errs: FE = None
    for i, env in enumerate(c.get("env") or []):
        env = env if isinstance(env, dict) else {}
        one: FE = None
        if not env.get("name"):
            one = err_missing_field("name")
        elif env["name"] in reserved:
            one = FieldError(f"{go_quote(env['name'])} is a reserved environment variable", ["name"])
        source = env.get("valueFrom")
        if isinstance(source, dict):
            allowed = ["configMapKeyRef", "secretKeyRef"]
            if cfg.serving("kubernetes.podspec-fieldref") != DISABLED:
                allowed += ["fieldRef", "resourceFieldRef"]
            one = also(one, via_field(check_disallowed(source, allowed), "valueFrom"))
        env_errs = also(env_errs, via_index(one, i))
    errs = also(errs, via_field(env_errs, "env"))
    from_errs: FE = None
    for source in c.get("envFrom") or []:
        source = source if isinstance(source, dict) else {}
        cm, sm = source.get("configMapRef"), source.get("secretRef")
        if cm is not None and sm is not None:
            from_errs = also(from_errs, err_multiple_one_of("configMapRef", "secretRef"))
        elif cm is None and sm is None:
            from_errs = also(from_errs, err_missing_one_of("configMapRef", "secretRef"))
    errs = also(errs, via_field(from_errs, "envFrom"))
    image = c.get("image") or ""
    if not image:
        errs = also(errs, err_missing_field("image"))
    elif not parse_image_reference(image):
        errs = also(
            errs,
            FieldError(
                "Failed to parse image reference", ["image"], f"image: {go_quote(image)}, error: could not parse reference: {image}"
            ),
        )
    ports = c.get("ports") or []
    if init:
        errs = also(errs, via_field(also(None, *[_validate_port_basic(p) for p in ports]) if ports else None, "ports"))
    else:
        errs = also(errs, via_field(_validate_container_ports(ports), "ports"))
    sc = c.get("securityContext")
    if isinstance(sc, dict):
        allowed = [
            "capabilities",
            "readOnlyRootFilesystem",
            "runAsUser",
            "runAsGroup",
            "runAsNonRoot",
            "allowPrivilegeEscalation",
            "seccompProfile",
        ]
        if sc.get("privileged") is False:
            allowed.append("privileged")
        sub = check_disallowed(sc, allowed)
        caps = sc.get("capabilities")
        if isinstance(caps, dict):
            cap_allowed = ["drop"]
            if cfg.serving("kubernetes.containerspec-addcapabilities") == ENABLED or (
                cfg.serving("secure-pod-defaults") in (ENABLED, "AllowRootBounded") and caps.get("add") == ["NET_BIND_SERVICE"]
            ):
                cap_allowed.append("add")
            sub = also(sub, via_field(check_disallowed(caps, cap_allowed), "capabilities"))
        for key in ("runAsUser", "runAsGroup"):
            value = sc.get(key)
            if isinstance(value, int) and not 0 <= value <= 2147483647:
                sub = also(sub, err_out_of_bounds(value, 0, 2147483647, key))
        errs = also(errs, via_field(sub, "securityContext"))
    policy = c.get("terminationMessagePolicy") or ""
    if policy not in ("File", "FallbackToLogsOnError", ""):
        errs = also(errs, err_invalid_value(policy, "terminationMessagePolicy"))
    errs = also(errs, via_field(_validate_volume_mounts(c.get("volumeMounts") or [], volumes, cfg), "volumeMounts"))
    return errs


def _validate_container_ports(ports: list[Any]) -> FE:
    """validateContainerPorts: the serving port (the first) must be TCP, named '', h2c or http1, not reserved."""
    if not ports:
        return None
    user = ports[0] if isinstance(ports[0], dict) else {}
    errs = _validate_port_basic(user)
    protocol = user.get("protocol") or ""
    if protocol not in ("", "TCP"):
        errs = also(errs, err_invalid_value(protocol, "protocol"))
    if (user.get("name") or "") not in VALID_PORT_NAMES:
        errs = also(
            errs,
            FieldError(f"Port name {user.get('name')} is not allowed", [CURRENT_FIELD], "Name must be empty, or one of: 'h2c', 'http1'"),
        )
    return errs


def _validate_port_basic(port: Any) -> FE:
    """validateContainerPortBasic"""
    port = port if isinstance(port, dict) else {}
    errs = check_disallowed(port, ("containerPort", "name", "protocol"))
    number = port.get("containerPort") or 0
    if number in RESERVED_PORTS:
        errs = also(
            errs,
            err_invalid_value(
                f"{number} is a reserved port", "containerPort", f"{number} is a reserved port, please use a different value"
            ),
        )
    if number < 0 or number > 65535:
        errs = also(errs, err_out_of_bounds(number, 0, 65535, "containerPort"))
    return errs


def _clean_path(p: str) -> str:
    import posixpath

    return posixpath.normpath(p) if p else "."


def _validate_volume_mounts(mounts: list[Any], volumes: dict[str, Any], cfg: KnativeConfig) -> FE:
    """validateVolumeMounts"""
    errs: FE = None
    seen: set[str] = set()
    for i, vm in enumerate(mounts):
        vm = vm if isinstance(vm, dict) else {}
        allowed = ["name", "readOnly", "mountPath", "subPath"]
        if cfg.serving("kubernetes.podspec-volumes-mount-propagation") != DISABLED:
            allowed.append("mountPropagation")
        errs = also(errs, via_index(check_disallowed(vm, allowed), i))
        name = vm.get("name") or ""
        if name not in volumes:
            errs = also(errs, via_index(FieldError("volumeMount has no matching volume", ["name"]), i))
        path = vm.get("mountPath") or ""
        clean = _clean_path(path)
        if not path:
            errs = also(errs, via_index(err_missing_field("mountPath"), i))
        elif clean in RESERVED_PATHS:
            errs = also(errs, via_index(FieldError(f"mountPath {go_quote(clean)} is a reserved path", ["mountPath"]), i))
        elif not path.startswith("/"):
            errs = also(errs, via_index(err_invalid_value(path, "mountPath"), i))
        elif clean in seen:
            errs = also(errs, via_index(err_invalid_value(f"{go_quote(path)} must be unique", "mountPath"), i))
        seen.add(clean)
        volume = volumes.get(name, {})
        writable_kind = any(volume.get(k) is not None for k in ("emptyDir", "persistentVolumeClaim", "ephemeral"))
        if not writable_kind and not vm.get("readOnly"):
            errs = also(errs, via_index(FieldError("volume mount should be readOnly for this type of volume", ["readOnly"]), i))
        if _d(volume, "persistentVolumeClaim", "readOnly") and not vm.get("readOnly"):
            errs = also(errs, via_index(FieldError("volume is readOnly but volume mount is not", ["readOnly"]), i))
    return errs


_REPO_COMPONENT = re.compile(r"[a-z0-9_.-]+")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
_REGISTRY = re.compile(r"(\[[0-9a-fA-F:]+\]|[a-zA-Z0-9.-]+)(:[0-9]+)?")


def parse_image_reference(ref: str) -> bool:
    """go-containerregistry name.ParseReference(ref, name.WeakValidation): a tag or digest reference.
    https://github.com/google/go-containerregistry/blob/main/pkg/name/ref.go  ParseReference"""
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        return False
    tag = ""
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.fullmatch(tag):
            return False
    parts = name.split("/")
    if len(parts) > 1 and (re.search(r"[.:]", parts[0]) or parts[0] == "localhost"):
        if not _REGISTRY.fullmatch(parts[0]):
            return False
        parts = parts[1:]
    repo = "/".join(parts)
    return bool(repo) and len(repo) <= 255 and all(p and _REPO_COMPONENT.fullmatch(p) for p in parts)


# ---------------------------------------------------------------------------------------------
# Knative Serving: Service, RevisionTemplateSpec, traffic, VerifyNameChange
# ---------------------------------------------------------------------------------------------


def validate_revision_template(template: dict[str, Any], parent: dict[str, Any], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go  RevisionTemplateSpec.Validate"""
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    spec = template.get("spec") if isinstance(template.get("spec"), dict) else {}
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    errs = via_field(validate_revision_spec(spec, cfg), "spec")
    errs = also(errs, via_field(validate_autoscaling_annotations(annotations, cfg), "metadata.annotations"))
    errs = also(errs, via_field(validate_networking_annotations(annotations), "metadata.annotations"))
    errs = also(errs, validate_revision_name(meta.get("name") or "", meta.get("generateName") or "", parent))
    errs = also(errs, via_field(validate_queue_sidecar_annotations(annotations), "metadata.annotations"))
    key, value, _ = _get(annotations, "serving.knative.dev/progress-deadline")
    errs = also(errs, via_field(_validate_second_duration(key, value, "progress-deadline"), "metadata.annotations"))
    return errs


def validate_revision_spec(spec: dict[str, Any], cfg: KnativeConfig) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go  RevisionSpec.Validate,
    validateTimeoutSeconds; ValidateContainerConcurrency in pkg/apis/serving/metadata_validation.go"""
    errs = validate_pod_spec(spec, cfg)
    timeout = spec.get("timeoutSeconds")
    if timeout is not None and timeout != 0 and (timeout > cfg.max_revision_timeout_seconds or timeout < 0):
        errs = also(errs, err_out_of_bounds(timeout, 0, cfg.max_revision_timeout_seconds, "timeoutSeconds"))
    cc = spec.get("containerConcurrency")
    if cc is not None:
        low = 0 if cfg.allow_container_concurrency_zero else 1
        if cc < low or cc > cfg.container_concurrency_max_limit:
            errs = also(
                errs, via_field(err_out_of_bounds(cc, low, cfg.container_concurrency_max_limit, CURRENT_FIELD), "containerConcurrency")
            )
    return errs


def validate_traffic(traffic: list[Any]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/route_validation.go  validateTrafficList /
    TrafficTarget.Validate, in a Service spec (default configuration name)"""
    errs: FE = None
    tags: dict[str, int] = {}
    total = 0
    for i, tt in enumerate(traffic):
        tt = tt if isinstance(tt, dict) else {}
        one: FE = None
        revision, latest = tt.get("revisionName") or "", tt.get("latestRevision")
        if latest is not None and (revision != "") == latest:
            one = err_generic(f"may not set revisionName {go_quote(revision)} when latestRevision is {go_v(latest)}", "latestRevision")
        if tt.get("configurationName"):
            one = also(one, err_disallowed_fields("configurationName"))
        elif revision:
            msgs = is_qualified_name(revision)
            if msgs:
                one = also(one, err_invalid_key_name(revision, "revisionName", *msgs))
        percent = tt.get("percent")
        if percent is not None and (percent < 0 or percent > 100):
            one = also(one, err_out_of_bounds(percent, 0, 100, "percent"))
        if tt.get("url"):
            one = also(one, err_disallowed_fields("url"))
            if not tt.get("tag"):
                one = also(one, err_disallowed_fields("url"))
        errs = also(errs, via_index(one, i))
        total += percent or 0
        tag = tt.get("tag") or ""
        if not tag:
            continue
        msgs = is_dns1035_label(tag)
        if msgs:
            errs = also(errs, err_invalid_array_value(f"not a DNS 1035 label: {go_v(msgs)}", "tag", i))
        if tag in tags:
            errs = also(errs, FieldError(f"Multiple definitions for {go_quote(tag)}", [f"[{i}].tag", f"[{tags[tag]}].tag"]))
        else:
            tags[tag] = i
    if total != 100:
        errs = also(errs, FieldError(f"Traffic targets sum to {total}, want 100", [CURRENT_FIELD]))
    return errs


def validate_service(svc: dict[str, Any], old: dict[str, Any] | None, cfg: KnativeConfig = DEFAULT_CONFIG) -> FE:
    """Validates the defaulted Service like the serving webhook.
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/service_validation.go  Service.Validate"""
    meta = svc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    errs = also(validate_object_metadata(meta), via_field(validate_has_no_autoscaling_annotation(annotations), "annotations"))
    errs = also(errs, via_field(validate_rollout_duration(annotations), "annotations"))
    errs = via_field(errs, "metadata")
    spec = svc.get("spec") or {}
    template = spec.get("template") or {}
    spec_errs = via_field(validate_revision_template(template, meta, cfg), "template")
    spec_errs = also(spec_errs, via_field(validate_traffic(spec.get("traffic") or []), "traffic"))
    errs = also(errs, via_field(spec_errs, "spec"))
    if old is not None:
        old_annotations = _d(old, "metadata", "annotations") or {}
        errs = also(
            errs,
            via_field(
                validate_creator_and_modifier(old.get("spec"), spec, old_annotations, annotations, "serving.knative.dev"),
                "metadata.annotations",
            ),
        )
        errs = also(errs, via_field(verify_name_change(template, _d(old, "spec", "template") or {}), "spec.template"))
    return errs


def validate_creator_and_modifier(old_spec: Any, new_spec: Any, old_ann: dict[str, str], new_ann: dict[str, str], group: str) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/vendor/knative.dev/pkg/apis/metadata_validation.go  ValidateCreatorAndModifier"""
    errs: FE = None
    creator, updater = group + "/creator", group + "/lastModifier"
    if old_ann.get(creator, "") != new_ann.get(creator, ""):
        errs = also(errs, FieldError("annotation value is immutable", [creator]))
    if old_spec == new_spec and old_ann.get(updater, "") != new_ann.get(updater, ""):
        errs = also(errs, err_invalid_value(new_ann.get(updater, ""), updater))
    return errs


def verify_name_change(new: dict[str, Any], old: dict[str, Any]) -> FE:
    """https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go  RevisionTemplateSpec.VerifyNameChange
    The header line is Knative's exactly; the diff under it imitates kmp.ShortDiff's go-cmp paths."""
    name = _d(new, "metadata", "name") or ""
    if not name or name != (_d(old, "metadata", "name") or ""):
        return None
    diff = short_diff(old, new, "{*v1.RevisionTemplateSpec}")
    if diff:
        return FieldError("Saw the following changes without a name change (-old +new)", ["metadata.name"], diff)
    return None


_GO_NAMES = {
    "metadata": "ObjectMeta",
    "httpGet": "HTTPGet",
    "tcpSocket": "TCPSocket",
    "grpc": "GRPC",
    "url": "URL",
    "uri": "URI",
    "CACerts": "CACerts",
    "apiVersion": "APIVersion",
    "imagePullSecrets": "ImagePullSecrets",
}
_POD_SPEC = {
    "containers",
    "volumes",
    "initContainers",
    "serviceAccountName",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",
    "affinity",
    "tolerations",
    "nodeSelector",
    "securityContext",
    "runtimeClassName",
    "priorityClassName",
    "schedulerName",
    "dnsPolicy",
    "dnsConfig",
    "hostAliases",
    "topologySpreadConstraints",
    "hostIPC",
    "hostPID",
    "hostNetwork",
    "shareProcessNamespace",
}
_ZERO = (None, "", 0, False, [], {})


def _go_field(name: str) -> str:
    return _GO_NAMES.get(name) or (name[:1].upper() + name[1:])


def short_diff(old: Any, new: Any, root: str) -> str:
    """kmp.ShortDiff-like text: one `path:\\n\\t-: "old"\\n\\t+: "new"\\n` block per changed leaf.
    https://github.com/knative/serving/blob/knative-v1.23.0/vendor/knative.dev/pkg/kmp/reporters.go  shortDiffReporter"""
    blocks: list[str] = []

    def walk(a: Any, b: Any, path: str, in_spec: bool, is_map: bool) -> None:
        if isinstance(a, dict) and isinstance(b, dict) and not is_map:
            for key in sorted(set(a) | set(b)):
                step = _go_field(key)
                if in_spec and key in _POD_SPEC:
                    step = "PodSpec." + step
                sub_map = key in ("annotations", "labels", "nodeSelector", "limits", "requests")
                walk(a.get(key), b.get(key), f"{path}.{step}", key == "spec" and path == root, sub_map)
            return
        if isinstance(a, dict) and isinstance(b, dict):
            for key in sorted(set(a) | set(b)):
                if key not in a or key not in b or a[key] != b[key]:
                    blocks.append(_diff_block(f"{path}[{go_quote(key)}]", key in a, a.get(key), key in b, b.get(key)))
            return
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]", False, False)
            return
        if (a in _ZERO and b in _ZERO) or a == b:
            return
        blocks.append(_diff_block(path, True, a, True, b))

    walk(old, new, root, False, False)
    return "".join(blocks)


def _diff_block(path: str, has_old: bool, old: Any, has_new: bool, new: Any) -> str:
    def show(v: Any) -> str:
        if isinstance(v, (dict, list)):
            return json.dumps(v, separators=(",", ":"), sort_keys=True)
        return go_v(v) if v is not None else ""

    text = f"{path}:\n"
    if has_old:
        text += f'\t-: "{show(old)}"\n'
    if has_new:
        text += f'\t+: "{show(new)}"\n'
    return text


# ---------------------------------------------------------------------------------------------
# Knative Eventing: decoding (defaulting webhook), Destination, KReference, DeliverySpec
# ---------------------------------------------------------------------------------------------

KREF = {"kind": str, "namespace": str, "name": str, "apiVersion": str, "group": str, "address": str}
DEST = {"ref": KREF, "uri": str, "CACerts": str, "audience": str}
DELIVERY = {
    "deadLetterSink": DEST,
    "retry": int,
    "timeout": str,
    "backoffPolicy": str,
    "backoffDelay": str,
    "retryAfterMax": str,
    "format": str,
}
FILTER: dict[str, Any] = {"exact": ("map", str), "prefix": ("map", str), "suffix": ("map", str), "cesql": str}
FILTER.update({"all": ("list", FILTER), "any": ("list", FILTER), "not": FILTER})
TRIGGER_SPEC = {
    "broker": str,
    "brokerRef": KREF,
    "filter": {"attributes": ("map", str)},
    "filters": ("list", FILTER),
    "subscriber": DEST,
    "delivery": DELIVERY,
}
PING_SPEC = {
    "sink": DEST,
    "ceOverrides": {"extensions": ("map", str)},
    "schedule": str,
    "timezone": str,
    "contentType": str,
    "data": str,
    "dataBase64": str,
}
BROKER_SPEC = {"config": KREF, "delivery": DELIVERY}
EVENTING_SPECS = {"Trigger": ("Trigger", TRIGGER_SPEC), "PingSource": ("PingSource", PING_SPEC), "Broker": ("Broker", BROKER_SPEC)}
_JSON_KIND = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


def _decode_error(value: Any, shape: Any, path: str, struct: str) -> str | None:
    """encoding/json Decoder with DisallowUnknownFields: the first error, keys in sorted order
    (the API server sends custom objects with sorted keys). Field names match case-insensitively."""
    if value is None:
        return None
    go_type = {str: "string", int: "int32", bool: "bool"}
    if shape in (str, int, bool):
        ok = isinstance(value, shape) and not (shape is int and isinstance(value, bool))
        if shape is int and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field {struct}.{path} of type {go_type[shape]}"
        return None
    if isinstance(shape, tuple):
        kind, elem = shape
        if kind == "map":
            if not isinstance(value, dict):
                return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field {struct}.{path} of type map[string]string"
            for key in sorted(value):
                err = _decode_error(value[key], elem, f"{path}.{key}" if path else key, struct)
                if err:
                    return err
            return None
        if not isinstance(value, list):
            return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field {struct}.{path} of type []v1.SubscriptionsAPIFilter"
        for item in value:
            err = _decode_error(item, elem, path, struct)
            if err:
                return err
        return None
    if not isinstance(value, dict):
        return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field {struct}.{path} of type struct"
    folded = {k.lower(): k for k in shape}
    for key in sorted(value):
        known = key if key in shape else folded.get(key.lower())
        if known is None:
            return f"json: unknown field {go_quote(key)}"
        err = _decode_error(value[key], shape[known], f"{path}.{known}" if path else known, struct)
        if err:
            return err
    return None


def decode_errors(kind: str, obj: dict[str, Any]) -> str | None:
    """The eventing defaulting webhook decodes with DisallowUnknownFields (metadata is skipped).
    https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/knative.dev/pkg/webhook/json/decode.go  Decode
    https://github.com/knative/eventing/blob/knative-v1.22.2/cmd/webhook/main.go  NewDefaultingAdmissionController(..., true)"""
    struct, spec_shape = EVENTING_SPECS[kind]
    for key in sorted(obj):
        if key.lower() in ("apiversion", "kind", "metadata", "status"):
            continue
        if key.lower() != "spec":
            return f"json: unknown field {go_quote(key)}"
        err = _decode_error(obj[key], spec_shape, "spec", struct)
        if err:
            return err
    return None


def serving_decode_errors(obj: dict[str, Any]) -> str | None:
    """Serving decodes without DisallowUnknownFields, but Go still refuses wrong types where the CRD
    preserves unknown fields: spec.template.metadata (ObjectMeta) labels and annotations.
    https://github.com/knative/serving/blob/knative-v1.23.0/cmd/webhook/main.go  newDefaultingAdmissionController"""
    meta = _d(obj, "spec", "template", "metadata")
    if not isinstance(meta, dict):
        return None
    for key in sorted(meta):
        value = meta[key]
        if key in ("labels", "annotations"):
            if not isinstance(value, dict) and value is not None:
                return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field ObjectMeta.spec.template.metadata.{key} of type map[string]string"
            for k in sorted(value or {}):
                if not isinstance(value[k], str):
                    return f"json: cannot unmarshal {_JSON_KIND.get(type(value[k]), 'value')} into Go struct field ObjectMeta.spec.template.metadata.{key} of type string"
        elif key in ("name", "generateName", "namespace") and not isinstance(value, str) and value is not None:
            return f"json: cannot unmarshal {_JSON_KIND.get(type(value), 'value')} into Go struct field ObjectMeta.spec.template.metadata.{key} of type string"
    return None


def _url_is_abs(uri: str) -> tuple[bool, str]:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
    except ValueError:
        return False, ""
    return bool(parts.scheme), parts.netloc


def validate_destination(dest: Any, parent_namespace: str, cfg: KnativeConfig) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/knative.dev/pkg/apis/duck/v1/destination.go  ValidateDestination"""
    dest = dest if isinstance(dest, dict) else {}
    ref, uri, ca = dest.get("ref"), dest.get("uri"), dest.get("CACerts")
    if ref is None and uri is None:
        return err_generic("expected at least one, got none", "ref", "uri")
    is_abs, host = _url_is_abs(uri) if isinstance(uri, str) else (False, "")
    if ref is not None and uri is not None and is_abs:
        return err_generic(
            "Absolute URI is not allowed when Ref or [apiVersion, kind, name] is present", "[apiVersion, kind, name]", "ref", "uri"
        )
    if ref is None and uri is not None and (not is_abs or not host):
        return err_invalid_value("Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent", "uri")
    if ref is not None and uri is None:
        return via_field(validate_kreference(ref, parent_namespace, cfg), "ref")
    if ca is not None:
        return _validate_ca_certs(ca)
    return None


def _validate_ca_certs(ca: str) -> FE:
    """validateCACerts (PEM block type only; the DER inside is not parsed)"""
    m = re.search(r"-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]*)-----END \1-----", ca)
    if not m:
        return err_invalid_value("CA Cert provided is invalid", "caCert")
    if m.group(1) != "CERTIFICATE":
        return err_invalid_value("CA Cert provided is not a certificate", "caCert")
    return None


def validate_kreference(ref: Any, parent_namespace: str, cfg: KnativeConfig) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/knative.dev/pkg/apis/duck/v1/knative_reference.go  KReference.Validate"""
    ref = ref if isinstance(ref, dict) else {}
    errs: FE = None
    if not ref.get("name"):
        errs = also(errs, err_missing_field("name"))
    if cfg.eventing("kreference-group"):
        if not ref.get("apiVersion") and not ref.get("group"):
            errs = also(also(errs, err_missing_field("apiVersion")), err_missing_field("group"))
    else:
        if ref.get("group"):
            errs = also(errs, err_disallowed_fields("group"))
        if not ref.get("apiVersion"):
            errs = also(errs, err_missing_field("apiVersion"))
    if not ref.get("kind"):
        errs = also(errs, err_missing_field("kind"))
    namespace = ref.get("namespace") or ""
    if namespace and parent_namespace and namespace != parent_namespace and not cfg.eventing("cross-namespace-event-links"):
        errs = also(
            errs,
            FieldError(
                "mismatched namespaces",
                ["namespace"],
                f"parent namespace: {go_quote(parent_namespace)} does not match ref: {go_quote(namespace)}",
            ),
        )
    return errs


def validate_delivery(ds: Any, parent_namespace: str, cfg: KnativeConfig) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/duck/v1/delivery_types.go  DeliverySpec.Validate"""
    if ds is None:
        return None
    ds = ds if isinstance(ds, dict) else {}
    errs: FE = None
    if ds.get("deadLetterSink") is not None:
        dlse = validate_destination(ds["deadLetterSink"], parent_namespace, cfg)
        if dlse is not None:
            errs = via_field(also(errs, dlse), "deadLetterSink")
    retry = ds.get("retry")
    if retry is not None and retry < 0:
        errs = also(errs, err_invalid_value(retry, "retry"))
    timeout = ds.get("timeout")
    if timeout is not None:
        if cfg.eventing("delivery-timeout"):
            try:
                if parse_period(timeout).is_zero():
                    raise GoError("zero")
            except GoError:
                errs = also(errs, err_invalid_value(timeout, "timeout"))
        else:
            errs = also(errs, err_disallowed_fields("timeout"))
    policy = ds.get("backoffPolicy")
    if policy is not None and policy not in ("exponential", "linear"):
        errs = also(errs, err_invalid_value(policy, "backoffPolicy"))
    delay = ds.get("backoffDelay")
    if delay is not None:
        try:
            parse_period(delay)
        except GoError:
            errs = also(errs, err_invalid_value(delay, "backoffDelay"))
    fmt = ds.get("format")
    if fmt is not None and fmt not in ("binary", "json"):
        errs = also(errs, err_invalid_value(fmt, "format"))
    retry_after = ds.get("retryAfterMax")
    if retry_after is not None:
        if cfg.eventing("delivery-retryafter"):
            try:
                if parse_period(retry_after).is_negative():
                    raise GoError("negative")
            except GoError:
                errs = also(errs, err_invalid_value(retry_after, "retryAfterMax"))
        else:
            errs = also(errs, err_disallowed_fields("retryAfterMax"))
    return errs


# ---------------------------------------------------------------------------------------------
# github.com/rickb777/date/period v1.13.0 Parse (as vendored by eventing knative-v1.22.2)
# https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/github.com/rickb777/date/period/parse.go  ParseWithNormalise
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """Fields are fixed-point with one decimal place (tenths), as rickb777/date/period stores them."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0
    minutes: int = 0
    seconds: int = 0
    neg: bool = False

    def is_zero(self) -> bool:
        return not any((self.years, self.months, self.days, self.hours, self.minutes, self.seconds))

    def is_negative(self) -> bool:
        return not self.is_zero() and (
            self.neg != any(v < 0 for v in (self.years, self.months, self.days, self.hours, self.minutes, self.seconds))
        )

    def total_seconds(self) -> float:
        """Tenths of a second precision (days as 24h, months as 30.436875 days, years as 365.2425 days)."""
        tenths = (
            self.years * 3652425 * 864 // 100
            + self.months * 3652425 * 864 // 1200
            + self.days * 86400
            + self.hours * 3600
            + self.minutes * 60
            + self.seconds
        )
        return (-tenths if self.neg else tenths) / 10


def _parse_decimal_fixed_point(s: str) -> int:
    """parseDecimalFixedPoint: keeps exactly one decimal digit, truncating the rest."""
    dec = s.find(".")
    if dec < 0:
        dec = s.find(",")
    if dec >= 0:
        s = s[:dec] + s[dec + 1 : dec + 2] if len(s) - dec > 1 else s[:dec] + s[dec + 1 :] + "0"
    else:
        s += "0"
    return go_parse_int(s, 64)


def parse_period(period: str) -> Period:
    if period == "":
        raise GoError("cannot parse a blank string as a period")
    if period == "P0":
        return Period()
    pcopy, neg = period, False
    if pcopy[0] == "-":
        neg, pcopy = True, pcopy[1:]
    elif pcopy[0] == "+":
        pcopy = pcopy[1:]
    if not pcopy:
        raise GoPanic("runtime error: index out of range [0] with length 0")  # pcopy[0] on "-" or "+"
    if pcopy[0] != "P":
        raise GoError(f"expected 'P' period mark at the start: {period}")
    pcopy = pcopy[1:]
    state = {"rest": pcopy, "ok": False}

    def field(mark: str) -> int:
        m = state["rest"].find(mark)
        if m > 0:
            try:
                value = _parse_decimal_fixed_point(state["rest"][:m])
            except GoError:
                raise GoError(f"expected a number before the '{mark}' marker: {period}") from None
            state["rest"] = state["rest"][m + 1 :]
            state["ok"] = True
            return value
        return 0

    hours = minutes = seconds = 0
    t = pcopy.find("T")
    if t >= 0:
        state["rest"] = pcopy[t + 1 :]
        hours, minutes, seconds = field("H"), field("M"), field("S")
        if state["rest"]:
            raise GoError(f"unexpected remaining components {state['rest']}: {period}")
        state["rest"] = pcopy[:t]
    years, months, weeks, days = field("Y"), field("M"), field("W"), field("D")
    if state["rest"]:
        raise GoError(f"unexpected remaining components {state['rest']}: {period}")
    if not state["ok"]:
        raise GoError(f"expected 'Y', 'M', 'W', 'D', 'H', 'M', or 'S' marker: {period}")
    return Period(years, months, weeks * 7 + days, hours, minutes, seconds, neg)


# ---------------------------------------------------------------------------------------------
# github.com/robfig/cron/v3 Parser (as eventing's PingSource configures it)
# https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/github.com/robfig/cron/v3/parser.go  Parser.Parse
# ---------------------------------------------------------------------------------------------

_BOUNDS = {
    "seconds": (0, 59, None),
    "minutes": (0, 59, None),
    "hours": (0, 23, None),
    "dom": (1, 31, None),
    "months": (
        1,
        12,
        {"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12},
    ),
    "dow": (0, 6, {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}),
}
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _cron_int(expr: str) -> int:
    """mustParseInt"""
    try:
        num = go_atoi(expr)
    except GoError as exc:
        raise GoError(f"failed to parse int from {expr}: {exc}") from None
    if num < 0:
        raise GoError(f"negative number ({num}) not allowed: {expr}")
    return num


def _cron_range(expr: str, bounds: tuple[int, int, dict[str, int] | None]) -> None:
    """getRange"""
    lo, hi, names = bounds
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    if low_and_high[0] in ("*", "?"):
        start, end = lo, hi
    else:
        start = names[low_and_high[0].lower()] if names and low_and_high[0].lower() in names else _cron_int(low_and_high[0])
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = names[low_and_high[1].lower()] if names and low_and_high[1].lower() in names else _cron_int(low_and_high[1])
        else:
            raise GoError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _cron_int(range_and_step[1])
        if single:
            end = hi
    else:
        raise GoError(f"too many slashes: {expr}")
    if start < lo:
        raise GoError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise GoError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise GoError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise GoError(f"step of range should be a positive number: {expr}")


def parse_cron(spec: str) -> None:
    """cron.NewParser(SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor).Parse: 5 or 6
    fields (an optional leading seconds field), descriptors, and a TZ= / CRON_TZ= prefix."""
    if not spec:
        raise GoError("empty spec string")
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        i, eq = spec.find(" "), spec.find("=")
        if i < 0:
            raise GoPanic("runtime error: slice bounds out of range [:-1]")  # spec[eq+1 : i] with i == -1
        location = spec[eq + 1 : i]
        try:
            go_load_location(location)
        except GoError as exc:
            raise GoError(f"provided bad location {location}: {exc}") from None
        spec = spec[i:].strip()
    if spec.startswith("@"):
        if spec in _DESCRIPTORS:
            return
        if spec.startswith("@every "):
            try:
                go_parse_duration(spec[len("@every ") :])
            except GoError as exc:
                raise GoError(f"failed to parse duration {spec}: {exc}") from None
            return
        raise GoError(f"unrecognized descriptor: {spec}")
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        raise GoError(f"expected 5 to 6 fields, found {len(fields)}: [{' '.join(fields)}]")
    if len(fields) == 5:
        fields = ["0", *fields]
    for text, bounds in zip(fields, ("seconds", "minutes", "hours", "dom", "months", "dow")):
        for expr in [r for r in text.split(",") if r]:
            _cron_range(expr, _BOUNDS[bounds])


# ---------------------------------------------------------------------------------------------
# CESQL: cloudevents/sdk-go/sql/v2 parser (ANTLR grammar CESQLLexer.g4 / CESQLParser.g4)
# https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/github.com/cloudevents/sdk-go/sql/v2/CESQLParser.g4
# https://github.com/knative/eventing/blob/knative-v1.22.2/vendor/github.com/cloudevents/sdk-go/sql/v2/parser/parser.go  Parse
# ---------------------------------------------------------------------------------------------

_KEYWORDS = ["AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"]
# (token type, regex) in the lexer's rule order; the longest match wins, ties go to the earlier rule.
_LEXER_RULES = [
    ("SPACE", r"[ \t\r\n]+"),
    ("(", r"\("),
    (")", r"\)"),
    (",", r","),
    ("SQUOTE", r"'"),
    ("DQUOTE", r'"'),
    ("AND", r"AND"),
    ("OR", r"OR"),
    ("XOR", r"XOR"),
    ("NOT", r"NOT"),
    ("*", r"\*"),
    ("/", r"/"),
    ("%", r"%"),
    ("+", r"\+"),
    ("-", r"-"),
    ("=", r"="),
    ("!=", r"!="),
    (">", r">"),
    (">=", r">="),
    ("<", r"<"),
    ("<>", r"<>"),
    ("<=", r"<="),
    ("LIKE", r"LIKE"),
    ("EXISTS", r"EXISTS"),
    ("IN", r"IN"),
    ("TRUE", r"TRUE"),
    ("FALSE", r"FALSE"),
    ("DSTRING", r'"(\\.|""|[^"\\])*"'),
    ("SSTRING", r"'(\\.|''|[^'\\])*'"),
    ("INT", r"[+-]?[0-9]+"),
    ("IDENT", r"[a-zA-Z]+"),
    ("IDENT_NUM", r"[a-zA-Z0-9]+"),
    ("FUNC_IDENT", r"[A-Z][A-Z_]*"),
]
_LEXER = [(name, re.compile(rx, re.DOTALL)) for name, rx in _LEXER_RULES]
_BINARY = {"*", "/", "%", "+", "-", "=", "!=", "<>", ">=", "<=", "<", ">", "AND", "OR", "XOR"}


class CESQLError(Exception):
    pass


def _cesql_tokens(text: str) -> list[tuple[str, str]]:
    upper = text.upper()  # CaseChangingStream(upper=true): the lexer sees upper case
    out, i = [], 0
    while i < len(text):
        best, best_len = None, 0
        for name, rx in _LEXER:
            m = rx.match(upper, i)
            if m and m.end() - i > best_len:
                best, best_len = name, m.end() - i
        if best is None:  # token recognition error: ANTLR's console listener reports it and skips the char
            i += 1
            continue
        if best != "SPACE":
            out.append((best, text[i : i + best_len]))
        i += best_len
    out.append(("EOF", ""))
    return out


def parse_cesql(text: str) -> None:
    """Accepts exactly the strings the ANTLR grammar accepts; raises CESQLError otherwise."""
    tokens = _cesql_tokens(text)
    pos = 0

    def peek(k: int = 0) -> str:
        return tokens[min(pos + k, len(tokens) - 1)][0]

    def take(*kinds: str) -> tuple[str, str]:
        nonlocal pos
        if peek() not in kinds:
            raise CESQLError(f"syntax error: unexpected {peek()}")
        pos += 1
        return tokens[pos - 1]

    def expression() -> None:
        primary()
        while True:
            kind = peek()
            if kind == "NOT" and peek(1) in ("LIKE", "IN"):
                take("NOT")
                kind = peek()
            if kind == "LIKE":
                take("LIKE")
                take("DSTRING", "SSTRING")
            elif kind == "IN":
                take("IN")
                take("(")
                expression()
                while peek() == ",":
                    take(",")
                    expression()
                take(")")
            elif kind in _BINARY:
                take(kind)
                expression()
            else:
                return

    def primary() -> None:
        kind = peek()
        if kind in ("IDENT", "FUNC_IDENT") and peek(1) == "(":
            take(kind)
            take("(")
            if peek() != ")":
                expression()
                while peek() == ",":
                    take(",")
                    expression()
            take(")")
        elif kind in ("NOT", "-"):
            take(kind)
            expression()
        elif kind == "EXISTS":
            take("EXISTS")
            take("IDENT", "IDENT_NUM")
        elif kind == "(":
            take("(")
            expression()
            take(")")
        elif kind in ("TRUE", "FALSE", "DSTRING", "SSTRING", "IDENT", "IDENT_NUM"):
            take(kind)
        elif kind == "INT":
            _, value = take("INT")
            try:
                go_parse_int(value, 32)
            except GoError as exc:
                raise CESQLError(str(exc)) from None
        else:
            raise CESQLError(f"syntax error: unexpected {kind}")

    expression()
    take("EOF")


def validate_cesql(expression: str) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go  ValidateCESQLExpression
    The empty string is accepted (Go returns nil for it). The first line of the error is exact; the
    parser's details depend on ANTLR's error recovery and are only kept for integer-range errors."""
    if expression == "":
        return None
    try:
        parse_cesql(expression)
    except CESQLError as exc:
        if str(exc).startswith("strconv."):
            return err_invalid_value(expression, CURRENT_FIELD, f"parse error: {exc}")
        return err_invalid_value(expression, CURRENT_FIELD)
    return None


# ---------------------------------------------------------------------------------------------
# Knative Eventing: Trigger, Broker, PingSource
# ---------------------------------------------------------------------------------------------

_ATTRIBUTE_NAME = re.compile(r"[a-z][a-z0-9]*")


def validate_attribute_names(attrs: Any) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go  ValidateAttributesNames"""
    errs: FE = None
    for attr in attrs or {}:
        if not _ATTRIBUTE_NAME.fullmatch(attr):
            errs = also(
                errs,
                via_key(
                    err_invalid_key_name(
                        attr, CURRENT_FIELD, "Attribute name must start with a letter and can only contain lowercase alphanumeric"
                    ),
                    attr,
                ),
            )
    return errs


def _has_multiple_dialects(f: dict[str, Any]) -> bool:
    """hasMultipleDialects: empty maps and lists do not count; an empty cesql does not count."""
    found = [
        bool(f.get("exact")),
        bool(f.get("prefix")),
        bool(f.get("suffix")),
        bool(f.get("all")),
        bool(f.get("any")),
        f.get("not") is not None,
    ]
    if sum(found) > 1:
        return True
    return bool(f.get("cesql")) and any(found)


def validate_filter(f: Any) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go  ValidateSubscriptionAPIFilter / ValidateOneOf"""
    if f is None:
        return None
    f = f if isinstance(f, dict) else {}
    errs: FE = None
    if _has_multiple_dialects(f):
        errs = also(errs, err_generic("multiple dialects found, filters can have only one dialect set"))
    errs = also(errs, via_field(validate_attribute_names(f.get("exact")), "exact"))
    errs = also(errs, via_field(validate_attribute_names(f.get("prefix")), "prefix"))
    errs = also(errs, via_field(validate_attribute_names(f.get("suffix")), "suffix"))
    errs = also(errs, via_field(validate_filters(f.get("all")), "all"))
    errs = also(errs, via_field(validate_filters(f.get("any")), "any"))
    errs = also(errs, via_field(validate_filter(f.get("not")), "not"))
    errs = also(errs, via_field(validate_cesql(f.get("cesql") or ""), "cesql"))
    return errs


def validate_filters(filters: Any) -> FE:
    """ValidateSubscriptionAPIFiltersList. Go applies ViaIndex(i) to the errors gathered so far, so an
    error in filters[0] reads filters[1][0] once filters[1] also fails: copied as is."""
    if filters is None:
        return None
    errs: FE = None
    for i, f in enumerate(filters):
        errs = via_index(also(errs, validate_filter(f)), i)
    return errs


def default_trigger(trigger: dict[str, Any], namespace: str) -> dict[str, Any]:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_defaults.go  Trigger.SetDefaults"""
    trigger = copy.deepcopy(trigger)
    spec = trigger.setdefault("spec", {})
    if not isinstance(spec, dict):
        return trigger
    if spec.get("filter") is None:
        spec["filter"] = {}
    for dest in (spec.get("subscriber"), _d(spec, "delivery", "deadLetterSink")):
        if isinstance(dest, dict) and isinstance(dest.get("ref"), dict) and not dest["ref"].get("namespace"):
            dest["ref"]["namespace"] = namespace
    return trigger


def validate_trigger(trigger: dict[str, Any], old: dict[str, Any] | None, namespace: str, cfg: KnativeConfig = DEFAULT_CONFIG) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go  Trigger.Validate /
    TriggerSpec.Validate / CheckImmutableFields"""
    spec = trigger.get("spec") if isinstance(trigger.get("spec"), dict) else {}
    errs: FE = None
    if spec.get("brokerRef") is None and not spec.get("broker"):
        errs = also(errs, err_missing_field("broker"))
    elif spec.get("brokerRef") is not None and spec.get("broker"):
        errs = also(errs, err_multiple_one_of("broker", "brokerRef"))
    if not cfg.eventing("cross-namespace-event-links") and isinstance(spec.get("brokerRef"), dict) and spec["brokerRef"].get("namespace"):
        errs = also(
            errs,
            FieldError(
                "must not set the field(s)",
                ["namespace"],
                "only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled",
            ),
        )
    errs = also(errs, via_field(via_field(validate_attribute_names(_d(spec, "filter", "attributes")), "attributes"), "filter"))
    errs = also(errs, via_field(validate_filters(spec.get("filters")), "filters"))
    errs = also(errs, via_field(validate_destination(spec.get("subscriber"), "", cfg), "subscriber"))
    errs = also(errs, via_field(validate_delivery(spec.get("delivery"), "", cfg), "delivery"))
    errs = via_field(errs, "spec")
    annotations = _d(trigger, "metadata", "annotations") or {}
    if "knative.dev/dependency" in annotations:
        errs = also(
            errs,
            via_field(
                _validate_dependency(annotations["knative.dev/dependency"], namespace), "metadata.annotations[knative.dev/dependency]"
            ),
        )
    if "eventing.knative.dev/injection" in annotations:
        value = annotations["eventing.knative.dev/injection"]
        if value not in ("enabled", "disabled"):
            fe = FieldError(f'The provided injection annotation value can only be "enabled" or "disabled", not {go_quote(value)}', [""])
        elif spec.get("broker") != "default":
            fe = FieldError(
                f"The provided injection annotation is only used for default broker, but non-default broker specified here: {go_quote(spec.get('broker') or '')}",
                [""],
            )
        else:
            fe = None
        errs = also(errs, via_field(fe, "metadata.annotations[eventing.knative.dev/injection]"))
    if old is not None:
        old_broker = _d(old, "spec", "broker") or ""
        if old_broker != (spec.get("broker") or ""):
            errs = also(
                errs,
                FieldError(
                    "Immutable fields changed (-old +new)",
                    ["spec", "broker"],
                    f'{{string}}:\n\t-: "{old_broker}"\n\t+: "{spec.get("broker") or ""}"\n',
                ),
            )
    return errs


def _validate_dependency(value: str, namespace: str) -> FE:
    try:
        ref = json.loads(value)
        if not isinstance(ref, dict):
            raise ValueError("json: cannot unmarshal into Go value of type v1.ObjectReference")
    except ValueError as exc:
        return FieldError(f"The provided annotation was not a corev1.ObjectReference: {go_quote(value)}", [""], str(exc))
    errs: FE = None
    if ref.get("namespace") and ref["namespace"] != namespace:
        errs = also(errs, FieldError(f"Namespace must be empty or equal to the trigger namespace {go_quote(namespace)}", ["namespace"]))
    for key in ("kind", "name", "apiVersion"):
        if not ref.get(key):
            errs = also(errs, err_missing_field(key))
    return errs


def validate_broker(broker: dict[str, Any], old: dict[str, Any] | None, namespace: str, cfg: KnativeConfig = DEFAULT_CONFIG) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/broker_validation.go  Broker.Validate
    (the class annotation is defaulted by the defaulting webhook, so it is never missing here)"""
    spec = broker.get("spec") if isinstance(broker.get("spec"), dict) else {}
    errs: FE = None
    if spec.get("config") is not None:
        errs = also(errs, via_field(validate_kreference(spec["config"], "", cfg), "config"))
    if spec.get("delivery") is not None:
        errs = also(errs, via_field(validate_delivery(spec["delivery"], "", cfg), "delivery"))
    errs = via_field(errs, "spec")
    if old is not None:
        old_spec = {k: v for k, v in (old.get("spec") or {}).items() if k != "delivery"}
        new_spec = {k: v for k, v in spec.items() if k != "delivery"}
        diff = short_diff(old_spec, new_spec, "{v1.BrokerSpec}")
        if diff:
            errs = also(errs, FieldError("Immutable fields changed (-old +new)", ["spec"], diff))
    return errs


def validate_ping_source(source: dict[str, Any], cfg: KnativeConfig = DEFAULT_CONFIG) -> FE:
    """https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/sources/v1/ping_validation.go  PingSourceSpec.Validate
    (after PingSourceSpec.SetDefaults: an empty schedule becomes "* * * * *")"""
    spec = source.get("spec") if isinstance(source.get("spec"), dict) else {}
    schedule = spec.get("schedule") or "* * * * *"
    errs: FE = None
    if "@every" in schedule:  # validateDescriptor
        errs = err_invalid_value("unsupported descriptor @every", "schedule")
    timezone = spec.get("timezone") or ""
    if timezone:
        schedule = f"CRON_TZ={timezone} {schedule}"
    try:
        parse_cron(schedule)
    except GoError as exc:
        where = "timezone" if str(exc).startswith("provided bad location") else "schedule"
        errs = also(errs, err_invalid_value(exc, where))
    errs = also(errs, via_field(validate_destination(spec.get("sink"), "", cfg), "sink"))
    data, data64, content_type = spec.get("data") or "", spec.get("dataBase64") or "", spec.get("contentType") or ""
    if data and data64:
        errs = also(errs, err_multiple_one_of("data", "dataBase64"))
    elif data64:
        if cfg.ping_data_max_size > -1 and len(data64) > cfg.ping_data_max_size:
            errs = also(
                errs,
                err_invalid_value(
                    f"the dataBase64 length of {len(data64)} bytes exceeds limit set at {cfg.ping_data_max_size}.", "dataBase64"
                ),
            )
        try:
            decoded = base64.b64decode(data64, validate=True).decode("utf-8", "replace")
        except ValueError:
            errs = also(errs, err_invalid_value(f"illegal base64 data at input byte {_bad_base64_offset(data64)}", "dataBase64"))
        else:
            if content_type == "application/json":
                problem = go_json_object_error(decoded)
                if problem:
                    errs = also(errs, err_invalid_value(problem, "dataBase64"))
    elif data:
        if cfg.ping_data_max_size > -1 and len(data) > cfg.ping_data_max_size:
            errs = also(
                errs, err_invalid_value(f"the data length of {len(data)} bytes exceeds limit set at {cfg.ping_data_max_size}.", "data")
            )
        if content_type == "application/json":
            problem = go_json_object_error(data)
            if problem:
                errs = also(errs, err_invalid_value(problem, "data"))
    # SourceSpec.Validate: the sink again (merged with the error above) and ceOverrides.
    errs = also(errs, via_field(validate_destination(spec.get("sink"), "", cfg), "sink"))
    for key in _d(spec, "ceOverrides", "extensions") or {}:
        if key == "" or not re.fullmatch(r"[a-zA-Z0-9]+", key):
            detail = "keys MUST NOT be empty" if key == "" else "keys are expected to be alphanumeric"
            errs = also(errs, via_field(via_field(err_invalid_key_name(key, "", detail), "extensions"), "ceOverrides"))
            break
    return via_field(errs, "spec")


def _bad_base64_offset(text: str) -> int:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    for i, ch in enumerate(text):
        if ch not in alphabet and ch != "=":
            return i
    return len(text) - len(text) % 4 if len(text) % 4 else len(text)


# ---------------------------------------------------------------------------------------------
# admit: the defaulting + validating webhooks for one request
# ---------------------------------------------------------------------------------------------


@dataclass
class Admission:
    denial: Denial | None = None
    warnings: list[str] = field(default_factory=list)


def admit(kind: str, new: dict[str, Any], old: dict[str, Any] | None, namespace: str, cfg: KnativeConfig = DEFAULT_CONFIG) -> Admission:
    """Run Knative's webhooks for a CREATE (old None) or UPDATE of `kind`."""
    if kind in ("Service",):
        problem = serving_decode_errors(new)
        if problem:
            return Admission(Denial(SERVING_DEFAULTING, f"mutation failed: cannot decode incoming new object: {problem}"))
        defaulted = default_service(new, cfg, in_create=old is None)
        baseline = default_service(old, cfg, in_create=True) if old is not None else None
        result = validate_service(defaulted, baseline, cfg)
        webhook = SERVING_VALIDATION
    elif kind in EVENTING_SPECS:
        problem = decode_errors(kind, new)
        if problem:
            return Admission(Denial(EVENTING_DEFAULTING, f"mutation failed: cannot decode incoming new object: {problem}"))
        webhook = EVENTING_VALIDATION
        try:
            if kind == "Trigger":
                result = validate_trigger(default_trigger(new, namespace), default_trigger(old, namespace) if old else None, namespace, cfg)
            elif kind == "Broker":
                result = validate_broker(new, old, namespace, cfg)
            else:
                result = validate_ping_source(new, cfg)
        except GoPanic:
            return Admission(panicked(webhook))
    else:
        return Admission()
    warnings = [error_text(w) for w in wrapped_errors(filter_level(result, WARNING_LEVEL))]
    errors = filter_level(result, ERROR_LEVEL)
    if errors is not None:
        return Admission(Denial(webhook, f"validation failed: {error_text(errors)}"), warnings)
    return Admission(None, warnings)
