"""What Knative's admission webhooks (and, for the Pods they lead to, Kubernetes) check and its
CRD schemas do not, mirrored so that `lepton render`/`deploy` refuses an object before a cluster
does. Targets: Knative Serving v1.23 (knative-v1.23.0) and Eventing v1.22 (knative-v1.22.2).

Each rule names the Go function it mirrors. A few rules are Lepton's own and stricter than
Knative, where Knative would accept an object that then misbehaves; their comments say so.

Helpers usable at render time, all pure:

- `rule_errors(obj, config=DEFAULTS)`: every rule `obj` breaks; `ClusterConfig` holds the
  Knative ConfigMap settings the rules depend on (Knative's defaults unless given).
- `go_duration(text)`: nanoseconds as Go's `time.ParseDuration` reads `text`, or None.
- `period_seconds(text)`: seconds as Knative reads an ISO-8601 `delivery` duration, or None
  (`knative_period(text)` gives the fields, in tenths).
- `duration_problem(text)`: why Lepton refuses a `delivery` duration, or None.
- `cron_problems(schedule, timezone)`: 'spec.schedule: ...'/'spec.timezone: ...' for a PingSource.
- `robfig_error(spec)`: robfig/cron's error for a schedule as PingSource parses it, or None.
- `json_object_problem(text)`: why PingSource refuses `data` as JSON, or None.
- `go_float(text)`, `go_int(text, bits)`, `quantity(text)`: Go's strconv and Kubernetes quantities.
- `lepton_knative.cesql.problems(expr)`: why a Trigger's `cesql` filter is refused.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lepton_knative import cesql

# Names: Knative refuses Service and revision names that are not DNS-1035 labels (a letter
# first); Lepton holds every object name to the same rule.
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
# k8s.io/apimachinery/pkg/api/resource quantity grammar (resource requests must not be negative).
QUANTITY = re.compile(r"^\+?(?P<num>[0-9]+(\.[0-9]*)?|\.[0-9]+)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$")
# eventing pkg/apis/eventing/v1/trigger_validation.go validAttributeName.
ATTRIBUTE = re.compile(r"^[a-z][a-z0-9]*$")
DIALECTS = ("exact", "prefix", "suffix", "all", "any", "not", "cesql")
AUTOSCALING = "autoscaling.knative.dev/"
KPA, HPA = "kpa.autoscaling.knative.dev", "hpa.autoscaling.knative.dev"
CLASSES = (KPA, HPA)
# serving pkg/apis/serving/k8s_validation.go reservedEnvVars.
RESERVED_ENV = ("PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION")
# serving k8s_validation.go reservedPorts: networking.BackendHTTPPort, BackendHTTP2Port, QueueAdminPort,
# AutoscalingQueueMetricsPort, UserQueueMetricsPort, runtime.ProfilingDefaultPort.
RESERVED_PORTS = (8012, 8013, 8022, 9090, 9091, 8008)
DEFAULT_PORT = 8080
MAX_REVISION_TIMEOUT = 600  # Knative's default max-revision-timeout-seconds
HOUR = 3600 * 10**9
SECOND = 10**9


@dataclass(frozen=True)
class ClusterConfig:
    """The Knative ConfigMap settings these rules depend on; the defaults are Knative's own."""

    max_revision_timeout_seconds: int = MAX_REVISION_TIMEOUT  # config-defaults
    container_concurrency_max_limit: int = 1000  # config-defaults container-concurrency-max-limit
    allow_container_concurrency_zero: bool = True  # config-defaults
    allow_zero_initial_scale: bool = False  # config-autoscaler allow-zero-initial-scale
    max_scale_limit: int = 0  # config-autoscaler max-scale-limit (0: no limit)
    pod_autoscaler_class: str = KPA  # config-autoscaler pod-autoscaler-class
    delivery_timeout: bool = True  # config-features delivery-timeout (enabled since eventing 1.x beta)
    ping_data_max_size: int = -1  # config-ping-defaults data-max-size (-1: no limit)


DEFAULTS = ClusterConfig()


# --- Go parsers ---------------------------------------------------------------------------

_GO_INT = re.compile(r"^[+-]?[0-9]+$")
_GO_FLOAT = re.compile(
    r"^[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?"
    r"|0[xX]([0-9a-fA-F]+(\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+)$"
)
_GO_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": SECOND, "m": 60 * SECOND, "h": HOUR}


def go_int(text: object, bits: int = 64) -> int | None:
    """strconv.ParseInt(text, 10, bits): None on a syntax or range error."""
    if not isinstance(text, str) or not _GO_INT.match(text):
        return None
    value = int(text)
    return value if -(2 ** (bits - 1)) <= value < 2 ** (bits - 1) else None


def go_float(text: object) -> float | None:
    """strconv.ParseFloat(text, 64) for finite values; None for what Go refuses, and for
    inf/NaN (which Go parses but no Knative setting means)."""
    if not isinstance(text, str):
        return None
    if "_" in text:  # strconv underscoreOK: '_' only between digits, or right after a 0x prefix
        prefix = re.match(r"^[+-]?0[xX]", text)
        digits = "0123456789abcdefABCDEF" if prefix else "0123456789"
        for i, c in enumerate(text):
            if c == "_" and not (
                (i > 0 and text[i - 1] in digits or prefix and i == prefix.end()) and i + 1 < len(text) and text[i + 1] in digits
            ):
                return None
        text = text.replace("_", "")
    if not _GO_FLOAT.match(text):
        return None
    value = float.fromhex(text) if "x" in text.lower() else float(text)
    return value if math.isfinite(value) else None


_DIGITS = re.compile(r"[0-9]*")
_UNIT = re.compile(r"[^0-9.]*")


def _prefix(pattern: re.Pattern[str], s: str) -> str:
    """What `pattern`, which also matches the empty string, matches at the start of `s`."""
    match = pattern.match(s)
    assert match is not None, pattern.pattern
    return match.group()


def go_duration(text: object) -> int | None:
    """Nanoseconds as Go's time.ParseDuration reads `text`; None where Go refuses it.
    Mirrors https://github.com/golang/go/blob/master/src/time/format.go ParseDuration."""
    if not isinstance(text, str):
        return None
    s, neg = text, False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            return None
        digits = _prefix(_DIGITS, s)
        s = s[len(digits) :]
        whole = int(digits or "0")
        if whole > 2**63:
            return None
        frac, scale, post = 0, 1.0, False
        if s[:1] == ".":
            fraction = _prefix(_DIGITS, s[1:])
            s = s[1 + len(fraction) :]
            post = bool(fraction)
            overflow = False
            for c in fraction:  # leadingFraction: stop adding precision at int64 overflow
                if overflow:
                    continue
                if frac > (2**63 - 1) // 10:
                    overflow = True
                    continue
                y = frac * 10 + int(c)
                if y > 2**63:
                    overflow = True
                    continue
                frac, scale = y, scale * 10
        if not digits and not post:
            return None
        unit_text = _prefix(_UNIT, s)
        s = s[len(unit_text) :]
        unit = _GO_UNITS.get(unit_text)
        if unit is None:
            return None
        if whole > 2**63 // unit:
            return None
        value = whole * unit
        if frac > 0:
            value += int(float(frac) * (float(unit) / scale))
            if value > 2**63:
                return None
        total += value
        if total > 2**63:
            return None
    if neg:
        return -total
    return total if total <= 2**63 - 1 else None


def go_seconds(value: str) -> float | None:
    nanos = go_duration(value)
    return None if nanos is None else nanos / SECOND


def _fmt_seconds(nanos: int) -> str:
    return f"{nanos / SECOND:g}s"


# --- ISO-8601 periods, as github.com/rickb777/date v1.13.0 period.Parse reads them ----------


def _quo(a: int, b: int) -> int:  # Go integer division (truncates toward zero)
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _rem(a: int, b: int) -> int:
    return a - b * _quo(a, b)


def _int16(x: int) -> int:
    return (x + 2**15) % 2**16 - 2**15


def _int64(x: int) -> int:
    return (x + 2**63) % 2**64 - 2**63


def knative_period(text: str) -> tuple[int, int, int, int, int, int] | None:
    """(years, months, days, hours, minutes, seconds) in tenths, as Knative's period.Parse
    returns them (normalised, each an int16), or None where it refuses `text`. Mirrors
    https://github.com/rickb777/date/blob/v1.13.0/period/parse.go ParseWithNormalise and
    period.go normalise64: every field keeps ONE decimal, later digits are dropped unread."""
    if not isinstance(text, str) or not text:
        return None
    if text == "P0":
        return (0, 0, 0, 0, 0, 0)
    rest, neg = text, False
    if rest[0] in "-+":
        neg, rest = rest[0] == "-", rest[1:]
    if not rest or rest[0] != "P":
        return None
    rest = rest[1:]
    fields = dict.fromkeys("YMWDhms", 0)
    ok = False

    def field(part: str, mark: str) -> tuple[int | None, str, bool]:
        m = part.find(mark)
        if m <= 0:
            return 0, part, False
        number = part[:m]
        dec = number.find(".")
        if dec < 0:
            dec = number.find(",")
        if dec >= 0:
            number = number[:dec] + number[dec + 1 : dec + 2] if len(number) - dec > 1 else number[:dec] + number[dec + 1 :] + "0"
        else:
            number += "0"
        return go_int(number), part[m + 1 :], True

    t = rest.find("T")
    date_part = rest
    if t >= 0:
        part = rest[t + 1 :]
        for mark, key in (("H", "h"), ("M", "m"), ("S", "s")):
            value, part, found = field(part, mark)
            if value is None:
                return None
            fields[key], ok = value, ok or found
        if part:
            return None
        date_part = rest[:t]
    for mark in "YMWD":
        value, date_part, found = field(date_part, mark)
        if value is None:
            return None
        fields[mark], ok = value, ok or found
    if date_part or not ok:
        return None
    years, months, days = fields["Y"], fields["M"], fields["W"] * 7 + fields["D"]
    hours, minutes, seconds = fields["h"], fields["m"], fields["s"]
    values = [years, months, days, hours, minutes, seconds]
    if not neg:  # abs()
        for i, v in enumerate(values):
            if v < 0:
                values[i], neg = -v, True
    years, months, days, hours, minutes, seconds = values
    # rippleUp(precise=True)
    minutes += _quo(seconds, 600) * 10
    seconds = _rem(seconds, 600)
    hours += _quo(minutes, 600) * 10
    minutes = _rem(minutes, 600)
    if hours > 32204:
        days += _quo(hours, 240) * 10
        hours = _rem(hours, 240)
    if days > 32760:
        scaled = days * 10**6
        months += _quo(scaled, 30436875)
        days = _quo(_rem(scaled, 30436875), 10**6)
    years += _quo(months, 120) * 10
    months = _rem(months, 120)
    # moveFractionToRight
    if _rem(years, 10) and (months or days or hours or minutes or seconds):
        months += _rem(years, 10) * 12
        years = _quo(years, 10) * 10
    if _rem(months, 10) and (days or hours or minutes or seconds):
        days += _quo(_rem(months, 10) * 30436875, 10**6)
        months = _quo(months, 10) * 10
    if _rem(days, 10) and (hours or minutes or seconds):
        hours += _rem(days, 10) * 24
        days = _quo(days, 10) * 10
    if _rem(hours, 10) and (minutes or seconds):
        minutes += _rem(hours, 10) * 60
        hours = _quo(hours, 10) * 10
    if _rem(minutes, 10) and seconds:
        seconds += _rem(minutes, 10) * 60
        minutes = _quo(minutes, 10) * 10
    sign = -1 if neg else 1
    return tuple(_int16(sign * v) for v in (years, months, days, hours, minutes, seconds))  # type: ignore[return-value]


def period_nanos(period: tuple[int, ...]) -> int:
    """period.Duration(): what Knative waits for `period` (years and months approximated)."""
    years, months, days, hours, minutes, seconds = period
    micro_days = _int64((years * 3652425 * 100 + months * 30436875 + days * 10**6) * 8640)
    millis = hours * 360000 + minutes * 6000 + seconds * 100
    return _int64(_int64(micro_days * 1000) + _int64(millis * 10**6))  # time.Duration wraps like Go's


def period_seconds(text: str) -> float | None:
    """Seconds Knative's delivery reads from the ISO-8601 `text` (PT0.05S -> 0.0); None if refused."""
    period = knative_period(text)
    return None if period is None else period_nanos(period) / SECOND


_NUM = r"[0-9]+(?:[.,][0-9]+)?"
_ISO = re.compile(
    rf"^P(?=[0-9])(?:({_NUM})Y)?(?:({_NUM})M)?(?:({_NUM})W)?(?:({_NUM})D)?"
    rf"(?:T(?=[0-9])(?:({_NUM})H)?(?:({_NUM})M)?(?:({_NUM})S)?)?$|^PT(?=[0-9])(?:({_NUM})H)?(?:({_NUM})M)?(?:({_NUM})S)?$"
)


def duration_problem(text: Any) -> str | None:
    """Why a Trigger `delivery` duration (backoffDelay, timeout) is refused, or None.

    Knative (DeliverySpec.Validate, https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/duck/v1/delivery_types.go)
    accepts whatever rickb777/date's period.Parse accepts, which keeps one decimal of each field
    and ignores the rest unread: PT0.05S is zero, PT1.25S is 1.2 s, PT1.2xS is 1.2 s, PT-5S is
    negative. Lepton refuses those surprises: only plain ISO-8601 with at most one decimal."""
    if not isinstance(text, str):
        return f"{text!r} is not an ISO-8601 duration (e.g. PT0.2S)"
    period, match = knative_period(text), _ISO.match(text)
    if period is None or match is None:
        return f"{text!r} is not an ISO-8601 duration (e.g. PT0.2S)"
    if any(v < 0 for v in period) or period_nanos(period) < 0:
        return f"{text!r} is too long: Knative's period type would overflow and read it as negative"
    if any(re.search(r"[.,][0-9]{2,}$", group) for group in match.groups() if group):
        seconds = period_nanos(period)
        return (
            f"{text!r} has more than one decimal; Knative keeps one decimal of a second (of each field) "
            f"and would read it as {_fmt_seconds(seconds)}"
        )
    return None


# --- robfig/cron v3.0.1, as PingSource parses schedules ------------------------------------

_MONTHS = {m: i + 1 for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
_DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_BOUNDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day-of-month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)
DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


class CronError(ValueError):
    """robfig/cron's refusal; `kind` is empty, location, descriptor, count or field."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _go_fields(text: str) -> list[str]:
    return [f for f in re.split(f"[{_GO_SPACE}]+", text) if f]


def _go_load_location(name: str) -> bool:
    if name in ("", "UTC", "Local"):
        return True
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def _cron_int(expr: str) -> int:
    if not _GO_INT.match(expr) or not -(2**63) <= int(expr) < 2**63:
        raise CronError("field", f"failed to parse int from {expr}")
    if int(expr) < 0:
        raise CronError("field", f"negative number ({int(expr)}) not allowed: {expr}")
    return int(expr)


def _cron_range(expr: str, low: int, high: int, names: dict[str, int] | None) -> None:
    # https://github.com/robfig/cron/blob/v3.0.1/parser.go getRange
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    single = len(low_and_high) == 1
    if low_and_high[0] in ("*", "?"):
        start, end = low, high
    else:

        def named(text: str) -> int:
            return names[text.lower()] if names and text.lower() in names else _cron_int(text)

        start = named(low_and_high[0])
        if len(low_and_high) == 1:
            end = start
        elif len(low_and_high) == 2:
            end = named(low_and_high[1])
        else:
            raise CronError("field", f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _cron_int(range_and_step[1])
        if single:
            end = high
    else:
        raise CronError("field", f"too many slashes: {expr}")
    if start < low:
        raise CronError("field", f"beginning of range ({start}) below minimum ({low}): {expr}")
    if end > high:
        raise CronError("field", f"end of range ({end}) above maximum ({high}): {expr}")
    if start > end:
        raise CronError("field", f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError("field", f"step of range should be a positive number: {expr}")


def robfig_parse(spec: str, *, second_optional: bool = True) -> None:
    """Raise CronError where robfig/cron v3's Parser.Parse refuses `spec`, built as PingSource
    builds it: NewParser(SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor), or
    without SecondOptional (the standard 5 fields) when `second_optional` is False.
    Mirrors https://github.com/robfig/cron/blob/v3.0.1/parser.go Parse, normalizeFields, getField."""
    if not spec:
        raise CronError("empty", "empty spec string")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        space, eq = spec.find(" "), spec.find("=")
        if space < 0:  # Go slices spec[eq+1:-1] here and panics
            raise CronError("location", "a time zone prefix needs a schedule after it")
        name = spec[eq + 1 : space]
        if not _go_load_location(name):
            raise CronError("location", f"provided bad location {name}: unknown time zone {name}")
        spec = spec[space:].strip(_GO_SPACE)
    if spec.startswith("@"):
        if spec in DESCRIPTORS:
            return
        if spec.startswith("@every "):
            if go_duration(spec[len("@every ") :]) is None:
                raise CronError("descriptor", f"failed to parse duration {spec}")
            return
        raise CronError("descriptor", f"unrecognized descriptor: {spec}")
    fields = _go_fields(spec)
    low = 5
    high = 6 if second_optional else 5
    if not low <= len(fields) <= high:
        expected = f"{low} to {high}" if low != high else f"exactly {low}"
        raise CronError("count", f"expected {expected} fields, found {len(fields)}: {fields}")
    if len(fields) == 5:
        fields = ["0", *fields]
    for text, (name, lo, hi, names) in zip(fields, _BOUNDS):
        for expr in (e for e in text.split(",") if e):
            try:
                _cron_range(expr, lo, hi, names)
            except CronError as error:
                raise CronError("field", f"{name}: {error}") from None


def robfig_error(spec: str, *, second_optional: bool = True) -> str | None:
    try:
        robfig_parse(spec, second_optional=second_optional)
    except CronError as error:
        return str(error)
    return None


def cron_problems(schedule: Any, timezone: Any = None) -> list[str]:
    """Each reason a PingSource `schedule`/`timezone` is refused, as 'spec.field: message'.

    Mirrors PingSourceSpec.Validate
    (https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/sources/v1/ping_validation.go):
    validateDescriptor refuses '@every', then robfig/cron parses "CRON_TZ=<timezone> <schedule>"
    with an OPTIONAL LEADING SECONDS FIELD. Lepton's own rules on top: exactly 5 fields, because
    the embedded platform's croniter reads a 6th field as seconds at the END, so a 6-field
    schedule would mean different things on the two platforms; and an IANA time zone."""
    if not isinstance(schedule, str):
        return [f"spec.schedule: {schedule!r} is not a cron schedule"]
    if not schedule.strip(_GO_SPACE):
        # ping_defaults.go SetDefaults would make it "* * * * *"; Lepton wants it said.
        return [f"spec.schedule: {schedule!r} is not a 5-field cron schedule (left empty, Knative would run it every minute)"]
    out = []
    if "@every" in schedule:
        out.append(f"spec.schedule: {schedule!r}: PingSource refuses @every (use 5 fields or one of {', '.join(DESCRIPTORS)})")
    spec = schedule
    if timezone:
        # Go's time.LoadLocation; Lepton also refuses "Local" (the adapter pod's zone).
        if not isinstance(timezone, str) or " " in timezone or timezone == "Local" or not _go_load_location(timezone):
            out.append(f"spec.timezone: {timezone!r} is not an IANA time zone (e.g. Europe/Paris)")
            timezone = "UTC"  # still check the schedule as Knative would with a time zone
        spec = f"CRON_TZ={timezone} {schedule}"
    try:
        robfig_parse(spec)
    except CronError as error:
        if "@every" in schedule:
            return out
        if error.kind in ("count", "empty"):
            out.append(f"spec.schedule: {schedule!r} is not a 5-field cron schedule (minute hour day-of-month month day-of-week)")
        elif error.kind == "location":
            out.append(f"spec.schedule: {schedule!r}: {error}")
        else:
            hint = ""
            if "day-of-week" in str(error) and "above maximum (6)" in str(error):
                hint = " (day-of-week is 0-6 or SUN-SAT; 7 is not Sunday here)"
            bad = re.search(r"failed to parse int from (\S+)", str(error))
            if bad and re.search(r"[LlWw#]", bad.group(1)):
                hint = " (robfig/cron has no L, W or #)"
            out.append(f"spec.schedule: {schedule!r} is not a schedule Knative's PingSource accepts: {error}{hint}")
        return out
    body = spec.split(" ", 1)[1].strip(_GO_SPACE) if spec.startswith(("TZ=", "CRON_TZ=")) else spec
    if not body.startswith("@") and len(_go_fields(body)) == 6:
        out.append(
            f"spec.schedule: {schedule!r} is not a 5-field cron schedule: Knative's PingSource would read the first "
            "of 6 fields as seconds, Lepton's embedded platform the last (use minute hour day-of-month month day-of-week)"
        )
    return out


# --- JSON, as PingSource decodes `data` ----------------------------------------------------


def json_object_problem(text: str) -> str | None:
    """Why Go's json.Unmarshal of `text` into a map[string]interface{} fails, or None.
    PingSource's validateJSON does exactly that, so `data` must be a JSON object (or null)."""

    def constant(name: str) -> Any:
        raise ValueError(f"invalid character {name[0]!r} looking for beginning of value")

    def number(s: str) -> float:
        value = float(s)
        if math.isinf(value):
            raise ValueError(f"number {s} does not fit in a float64")
        return value

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number, parse_int=number)
    except (ValueError, RecursionError) as error:
        return f"is not valid JSON ({error})"
    if value is None or isinstance(value, dict):
        return None
    kind = {list: "an array", str: "a string", bool: "a boolean", float: "a number"}[type(value)]
    return f"is {kind}, not a JSON object"


# --- the rules -----------------------------------------------------------------------------


def rule_errors(obj: dict[str, Any], config: ClusterConfig = DEFAULTS) -> Iterator[str]:
    """Each rule `obj` breaks, as 'field.path: message'."""
    meta = obj.get("metadata", {})
    if not isinstance(meta, dict):
        return
    yield from _name("metadata.name", meta.get("name"))
    if "namespace" in meta:
        # A namespace is a DNS-1123 label (k8s ValidateNamespaceName); it may start with a digit.
        if not isinstance(meta["namespace"], str) or not DNS1123_LABEL.match(meta["namespace"]):
            yield f"metadata.namespace: {meta['namespace']!r} is not a DNS-1123 label (lower-case letters, digits, '-', at most 63)"
    yield from _labels("metadata.labels", meta.get("labels", {}))
    spec = obj.get("spec", {})
    if not isinstance(spec, dict):
        return
    kind = obj.get("kind", "")
    if kind == "Service":
        yield from _service_metadata(meta)
        yield from _service(meta.get("name", ""), spec, config)
    elif kind == "Trigger":
        yield from _trigger(meta.get("namespace"), spec, config)
    elif kind == "PingSource":
        yield from _pingsource(meta.get("namespace"), spec, config)


def _name(where: str, name: Any) -> Iterator[str]:
    # knative.dev/pkg apis/metadata_validation.go ValidateObjectMetadata: NameIsDNS1035Label.
    # https://github.com/knative/pkg/blob/main/apis/metadata_validation.go
    if not isinstance(name, str) or not DNS_LABEL.match(name):
        yield (
            f"{where}: {name!r} is not a DNS-1123 label starting with a letter "
            "(Knative wants DNS-1035: lower-case letters, digits, '-', a letter first, at most 63)"
        )


def _labels(where: str, labels: Any) -> Iterator[str]:
    # k8s apimachinery ValidateLabels: qualified-name keys, label values.
    if not isinstance(labels, dict):
        return
    for key, value in labels.items():
        if not LABEL_KEY.match(str(key)):
            yield f"{where}[{key}]: not a valid label key"
        if not isinstance(value, str) or not LABEL_VALUE.match(value):
            yield f"{where}[{key}]: {value!r} is not a valid label value (at most 63 of A-Z a-z 0-9 - _ .)"


def _service_metadata(meta: dict[str, Any]) -> Iterator[str]:
    notes = meta.get("annotations", {})
    if not isinstance(notes, dict):
        return
    # serving pkg/apis/serving/metadata_validation.go ValidateHasNoAutoscalingAnnotation
    # https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/metadata_validation.go
    for key in notes:
        if str(key).startswith("autoscaling.knative.dev"):
            yield f"metadata.annotations[{key}]: autoscaling annotations must be put under spec.template.metadata.annotations"
    # serving metadata_validation.go ValidateRolloutDurationAnnotation
    if "serving.knative.dev/rollout-duration" in notes:
        yield from _whole_seconds(
            "metadata.annotations[serving.knative.dev/rollout-duration]", notes["serving.knative.dev/rollout-duration"]
        )


def _whole_seconds(where: str, value: Any) -> Iterator[str]:
    nanos = go_duration(value)
    if nanos is None:
        yield f"{where}: {value!r} is not a Go duration (e.g. 30s, 5m)"
    elif nanos % SECOND:
        yield f"{where}: {value!r} must be whole seconds"
    elif nanos < 0:
        yield f"{where}: {value!r} must not be negative"


def _service(name: str, spec: dict[str, Any], config: ClusterConfig) -> Iterator[str]:
    template = spec.get("template", {})
    if not isinstance(template, dict):
        return
    tmeta = template.get("metadata", {}) if isinstance(template.get("metadata", {}), dict) else {}
    rev = tmeta.get("name")
    # serving pkg/apis/serving/v1/revision_validation.go validateRevisionName: DNS-1035 label with
    # the prefix '<service>-'. https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/revision_validation.go
    if rev is not None and (not isinstance(rev, str) or not rev.startswith(f"{name}-") or not DNS_LABEL.match(rev)):
        yield (
            f"spec.template.metadata.name: {rev!r} must be a DNS-1123 label starting with '{name}-' "
            f"(a letter first, at most 63 characters, so '{name}-' leaves {max(0, 63 - len(name) - 1)})"
        )
    yield from _labels("spec.template.metadata.labels", tmeta.get("labels", {}))
    notes = tmeta.get("annotations", {})
    if isinstance(notes, dict):
        yield from _autoscaling("spec.template.metadata.annotations", notes, config)
        if "serving.knative.dev/progress-deadline" in notes:
            # revision_validation.go validateProgressDeadlineAnnotation
            yield from _whole_seconds(
                "spec.template.metadata.annotations[serving.knative.dev/progress-deadline]", notes["serving.knative.dev/progress-deadline"]
            )
    pod = template.get("spec", {})
    if not isinstance(pod, dict):
        return
    # serving pkg/apis/serving/metadata_validation.go ValidateContainerConcurrency
    cc = pod.get("containerConcurrency")
    low = 0 if config.allow_container_concurrency_zero else 1
    if isinstance(cc, int) and not low <= cc <= config.container_concurrency_max_limit:
        yield f"spec.template.spec.containerConcurrency: {cc} is outside {low}..{config.container_concurrency_max_limit}"
    # revision_validation.go validateTimeoutSeconds allows 0..max-revision-timeout-seconds; 0 is
    # then replaced by the default (300 s), so Lepton refuses 0 as well.
    timeout = pod.get("timeoutSeconds")
    if isinstance(timeout, int) and not 0 < timeout <= config.max_revision_timeout_seconds:
        yield (
            f"spec.template.spec.timeoutSeconds: {timeout} is outside 1..{config.max_revision_timeout_seconds} "
            "(max-revision-timeout-seconds; 0 would mean Knative's default)"
        )
    yield from _traffic(spec.get("traffic"))
    containers = pod.get("containers", [])
    if not isinstance(containers, list):
        return
    # serving pkg/apis/serving/k8s_validation.go ValidatePodSpec: one container unless multi-container.
    if len(containers) != 1:
        yield f"spec.template.spec.containers: one serving container expected, got {len(containers)}"
    for i, container in enumerate(c for c in containers if isinstance(c, dict)):
        yield from _container(f"spec.template.spec.containers.{i}", container)


def _traffic(targets: Any) -> Iterator[str]:
    """serving pkg/apis/serving/v1/route_validation.go validateTrafficList: percents add up to
    100, each tag a DNS-1035 label defined once.
    https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/v1/route_validation.go"""
    if not isinstance(targets, list):
        return
    total = 0
    seen: dict[str, int] = {}
    for i, target in enumerate(t for t in targets if isinstance(t, dict)):
        percent = target.get("percent") or 0
        if isinstance(percent, int):
            total += percent
        tag = target.get("tag")
        if not tag:
            continue
        if not isinstance(tag, str) or not DNS_LABEL.match(tag):
            yield f"spec.traffic[{i}].tag: {tag!r} is not a DNS-1035 label"
        elif tag in seen:
            yield f"spec.traffic[{i}].tag: multiple definitions for {tag!r} (also spec.traffic[{seen[tag]}].tag)"
        else:
            seen[tag] = i
    if targets and total != 100:
        yield f"spec.traffic: traffic targets sum to {total}, want 100"


def _container(where: str, container: dict[str, Any]) -> Iterator[str]:
    # serving k8s_validation.go validate(): reserved container name.
    if container.get("name") == "queue-proxy":
        yield f"{where}.name: 'queue-proxy' is reserved by Knative"
    if not container.get("image"):
        yield f"{where}.image: required"
    yield from _env(where, container.get("env", []))
    yield from _env_from(where, container.get("envFrom", []))
    port = yield from _ports(where, container.get("ports", []))
    yield from _resources(where, container.get("resources", {}))
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if isinstance(container.get(probe), dict):
            yield from _probe(f"{where}.{probe}", probe, container[probe], port)


def _env(where: str, env: Any) -> Iterator[str]:
    if not isinstance(env, list):
        return
    names = [e.get("name") for e in env if isinstance(e, dict)]
    for dup in sorted({n for n in names if isinstance(n, str) and names.count(n) > 1}):
        # Kubernetes keeps the last value; Lepton refuses the ambiguity.
        yield f"{where}.env: {dup!r} is set twice"
    for n in names:
        # serving k8s_validation.go validateEnvVar: name required, reservedEnvVars.
        # https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/serving/k8s_validation.go
        if not n:
            yield f"{where}.env: every variable needs a name"
        elif n in RESERVED_ENV:
            yield f"{where}.env: {n!r} is reserved by Knative (it sets {', '.join(RESERVED_ENV)} itself)"
        # Kubernetes (>= 1.34, Knative 1.23's minimum) validates env names with
        # apimachinery validation.IsRelaxedEnvVarName: printable ASCII except '='.
        elif not isinstance(n, str) or any(not 32 <= ord(c) <= 126 or c == "=" for c in n):
            yield f"{where}.env: {n!r} is not a valid variable name (Kubernetes allows printable ASCII except '=')"


def _env_from(where: str, env_from: Any) -> Iterator[str]:
    if not isinstance(env_from, list):
        return
    for i, source in enumerate(env_from):
        if not isinstance(source, dict):
            continue
        # serving k8s_validation.go validateEnvFrom: exactly one of configMapRef, secretRef.
        refs = [k for k in ("configMapRef", "secretRef") if source.get(k) is not None]
        if len(refs) != 1:
            yield f"{where}.envFrom.{i}: needs exactly one of configMapRef or secretRef"
        for ref in refs:
            # Kubernetes ValidatePodSpec: the name must be a DNS-1123 subdomain.
            ref_name = source[ref].get("name") if isinstance(source[ref], dict) else None
            if not isinstance(ref_name, str) or not DNS1123_SUBDOMAIN.match(ref_name):
                yield f"{where}.envFrom.{i}.{ref}.name: {ref_name!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-', '.')"


def _ports(where: str, ports: Any) -> Generator[str, None, tuple[str, int]]:
    """Yields problems, returns the serving port's (name, number) as Knative resolves them."""
    if not isinstance(ports, list) or not ports:
        return ("http", DEFAULT_PORT)
    # serving k8s_validation.go validateContainersPorts / validateContainerPorts / validateContainerPortBasic
    if len(ports) > 1:
        yield f"{where}.ports: more than one container port is set (Knative serves one port)"
    port = ports[0] if isinstance(ports[0], dict) else {}
    number, port_name = port.get("containerPort", 0), port.get("name", "")
    if isinstance(number, int):
        if number in RESERVED_PORTS:
            yield f"{where}.ports.0.containerPort: {number} is reserved by Knative's queue-proxy ({', '.join(map(str, RESERVED_PORTS))})"
        if not 0 <= number <= 65535:
            yield f"{where}.ports.0.containerPort: {number} is outside 0..65535"
    if port_name not in ("", "h2c", "http1"):
        yield f"{where}.ports.0.name: {port_name!r} is not allowed (Knative wants '', 'http1' or 'h2c')"
    if port.get("protocol", "TCP") not in ("", "TCP"):
        yield f"{where}.ports.0.protocol: {port.get('protocol')!r} is not TCP"
    return (port_name or "http", number or DEFAULT_PORT)


_SCALE = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def quantity(text: Any) -> Decimal | None:
    """A Kubernetes resource quantity's value (k8s resource.ParseQuantity), or None."""
    found = QUANTITY.match(str(text))
    if not found:
        return None
    number, suffix = Decimal(found["num"]), found["suffix"] or ""
    if suffix[:1] in ("e", "E"):
        return number * Decimal(10) ** int(suffix[1:])
    return number * _SCALE[suffix]


def _resources(where: str, resources: Any) -> Iterator[str]:
    if not isinstance(resources, dict):
        return
    values: dict[str, dict[str, Decimal]] = {"requests": {}, "limits": {}}
    for part in ("requests", "limits"):
        for resource, amount in (resources.get(part) or {}).items():
            value = quantity(amount)
            if value is None:
                yield f"{where}.resources.{part}.{resource}: {amount!r} is not a Kubernetes quantity"
            else:
                values[part][resource] = value
    # Kubernetes ValidateResourceRequirements: requests <= limits; extended resources (GPUs) are
    # whole numbers and, when requested, requested exactly as their limit.
    for resource, request in values["requests"].items():
        limit = values["limits"].get(resource)
        if limit is not None and request > limit and "/" not in resource:
            yield f"{where}.resources.requests.{resource}: {resources['requests'][resource]!r} is above its limit {resources['limits'][resource]!r}"
    gpu_request = (resources.get("requests") or {}).get("nvidia.com/gpu")
    if gpu_request is not None and gpu_request != (resources.get("limits") or {}).get("nvidia.com/gpu"):
        yield f"{where}.resources: nvidia.com/gpu must be set in limits (and requests, if given, equal to it)"
    for part in ("requests", "limits"):
        gpus = values[part].get("nvidia.com/gpu")
        if gpus is not None and gpus != gpus.to_integral_value():
            yield f"{where}.resources.{part}.nvidia.com/gpu: {resources[part]['nvidia.com/gpu']!r} must be a whole number"


def _probe(where: str, kind: str, probe: dict[str, Any], port: tuple[str, int]) -> Iterator[str]:
    """Knative's probe rules for the serving container, and Kubernetes' for the Pod's probes.
    startupProbe IS allowed (serving fieldmask.go ContainerMask keeps StartupProbe;
    k8s_validation.go ValidateUserContainer runs validateProbe on it)."""
    handlers = [h for h in ("httpGet", "tcpSocket", "exec", "grpc") if probe.get(h) is not None]
    # serving k8s_validation.go validateProbe: exactly one handler. Knative gives a readiness
    # probe without one a tcpSocket (revision_defaults.go applyUserContainerDefaultReadinessProbe).
    if len(handlers) > 1:
        yield f"{where}: set only one of {', '.join(handlers)}"
    elif not handlers and kind != "readinessProbe":
        yield f"{where}: needs one of httpGet, tcpSocket, exec or grpc"
    http = probe.get("httpGet")
    if isinstance(http, dict):
        path = http.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            yield f"{where}.httpGet.path: {path!r} must start with '/'"
    for handler in ("httpGet", "tcpSocket"):
        action = probe.get(handler)
        if not isinstance(action, dict):
            continue
        value = action.get("port")
        # validateProbe: a named port must be the serving port's name.
        if isinstance(value, str) and value and value != port[0]:
            yield f"{where}.{handler}.port: {value!r} must match the container port name {port[0]!r}"
        elif kind == "startupProbe" and value != port[1]:
            # Knative rewrites only the liveness probe's port (deploy.go rewriteUserLivenessProbe) and
            # runs readiness probes from queue-proxy; a startupProbe reaches the Pod unchanged, where
            # Kubernetes refuses port 0 (ValidatePortNumOrName) and the serving port is renamed
            # 'user-port' (deploy.go buildContainerPorts): only the port number works.
            yield (
                f"{where}.{handler}.port: {'required' if value is None else repr(value)}: set port: {port[1]} "
                "(Knative passes a startupProbe to Kubernetes unchanged)"
            )
    numbers = {
        k: probe.get(k, 0) for k in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold")
    }
    for field, value in numbers.items():
        if isinstance(value, int) and value < 0:
            yield f"{where}.{field}: {value} must not be negative"
    if kind == "readinessProbe":
        # serving k8s_validation.go validateReadinessProbe (after revision_defaults.go defaults).
        if numbers["periodSeconds"] == 0:
            for field in ("failureThreshold", "timeoutSeconds"):
                if numbers[field]:
                    yield f"{where}.{field}: not allowed when periodSeconds is 0 (Knative's aggressive readiness probing)"
    else:
        # Kubernetes validateContainers: liveness and startup probes need successThreshold 1.
        if numbers["successThreshold"] not in (0, 1):
            yield f"{where}.successThreshold: {numbers['successThreshold']} must be 1 for a {kind}"
        grace = probe.get("terminationGracePeriodSeconds")
        if isinstance(grace, int) and grace < 1:
            yield f"{where}.terminationGracePeriodSeconds: {grace} must be at least 1"


def _get(annotations: dict[str, Any], *keys: str) -> tuple[str, Any] | tuple[None, None]:
    # knative.dev/pkg kmap KeyPriority.Get: the first key present wins.
    for key in keys:
        if key in annotations:
            return key, annotations[key]
    return None, None


def _autoscaling(where: str, annotations: dict[str, Any], config: ClusterConfig = DEFAULTS) -> Iterator[str]:
    """Mirrors serving pkg/apis/autoscaling/annotation_validation.go ValidateAnnotations
    (https://github.com/knative/serving/blob/knative-v1.23.0/pkg/apis/autoscaling/annotation_validation.go)."""
    for name, text in annotations.items():
        if not isinstance(text, str):
            yield f"{where}[{name}]: annotation values must be strings, got {text!r}"
            return
    A = AUTOSCALING

    # validateClass: Knative refuses *.knative.dev classes other than KPA/HPA; Lepton refuses any
    # other class too (no other autoscaler is installed with it).
    cls = annotations.get(A + "class")
    if cls is not None and cls not in CLASSES:
        yield f"{where}[{A}class]: {cls!r} is not one of {', '.join(CLASSES)}"

    # validateMinMaxScale, getIntGE0.
    problems: list[str] = []

    def int_ge0(*keys: str) -> int:
        key, value = _get(annotations, *keys)
        if key is None:
            return 0
        parsed = go_int(value, 64)
        if parsed is None or parsed < 0:
            problems.append(f"{where}[{key}]: {value!r} is not a non-negative integer")
            return 0
        if parsed > 2**31 - 1:
            problems.append(f"{where}[{key}]: {value!r} is outside 0..2147483647")
            return 0
        return parsed

    low = int_ge0(A + "min-scale", A + "minScale")
    high = int_ge0(A + "max-scale", A + "maxScale")
    yield from problems
    if high and high < low:
        yield f"{where}[{A}max-scale]: {high} is below min-scale {low}"
    max_key, _ = _get(annotations, A + "max-scale", A + "maxScale")
    if max_key and config.max_scale_limit:
        if high > config.max_scale_limit:
            yield f"{where}[{max_key}]: {high} is above the cluster's max-scale-limit {config.max_scale_limit}"
        if high == 0:
            yield f"{where}[{max_key}]: 0 (unlimited) is not allowed by the cluster's max-scale-limit {config.max_scale_limit}"
    if A + "activation-scale" in annotations:
        value = annotations[A + "activation-scale"]
        active = go_int(value, 32)
        if active is None:
            yield f"{where}[{A}activation-scale]: {value!r} is not an integer"
        elif low > active:
            yield f"{where}[{A}activation-scale]: {active} is below min-scale {low}"
        elif high and high < active:
            yield f"{where}[{A}activation-scale]: {active} is above max-scale {high}"
        elif active < 2:
            yield f"{where}[{A}activation-scale]: {active} must be greater than 1"

    # validateFloats.
    def number(keys: tuple[str, ...], lowest: float | None, highest: float | None, extra: tuple[float, ...] = ()) -> Iterator[str]:
        found, value = _get(annotations, *keys)
        if found is None:
            return
        parsed = go_float(value)
        if parsed is None:
            yield f"{where}[{found}]: {value!r} is not a number"
        elif parsed in extra:
            return
        elif lowest is not None and highest is not None and not lowest <= parsed <= highest:
            yield f"{where}[{found}]: {value} is outside {lowest:g}..{highest:g}"
        elif lowest is not None and parsed < lowest:
            yield f"{where}[{found}]: {value} is below {lowest:g}"

    yield from number((A + "panic-window-percentage", A + "panicWindowPercentage"), 1, 100)
    yield from number((A + "panic-threshold-percentage", A + "panicThresholdPercentage"), 110, 1000)
    yield from number((A + "target",), 0.01, None)  # TargetMin
    yield from number((A + "target-utilization-percentage", A + "targetUtilizationPercentage"), 1, 100)
    yield from number((A + "target-burst-capacity", A + "targetBurstCapacity"), 0, None, extra=(-1.0,))

    # validateWindow: 6s..1h, whole seconds.
    window = annotations.get(A + "window")
    if window is not None:
        nanos = go_duration(window)
        if nanos is None or not 6 * SECOND <= nanos <= HOUR:
            yield f"{where}[{A}window]: {window!r} is not a duration between 6s and 1h"
        elif nanos % SECOND:
            yield f"{where}[{A}window]: {window!r} must be whole seconds"
    # validateLastPodRetention: 0..1h, any precision.
    key, value = _get(annotations, A + "scale-to-zero-pod-retention-period", A + "scaleToZeroPodRetentionPeriod")
    if key is not None:
        nanos = go_duration(value)
        if nanos is None or not 0 <= nanos <= HOUR:
            yield f"{where}[{key}]: {value!r} is not a duration between 0s and 1h"
    # validateScaleDownDelay: 0..1h, whole seconds.
    key, value = _get(annotations, A + "scale-down-delay", A + "scaleDownDelay")
    if key is not None:
        nanos = go_duration(value)
        if nanos is None or not 0 <= nanos <= HOUR:
            yield f"{where}[{key}]: {value!r} is not a duration between 0s and 1h"
        elif nanos % SECOND:
            yield f"{where}[{key}]: {value!r} must be whole seconds"
    # validateMetric: KPA scales on concurrency or rps; HPA on any metric.
    metric = annotations.get(A + "metric")
    if metric is not None:
        effective = cls if cls is not None else config.pod_autoscaler_class
        if (effective == KPA and metric not in ("concurrency", "rps")) or (effective == HPA and not metric):
            yield f"{where}[{A}metric]: {metric!r} is not a metric the {effective} autoscaler supports"
    # validateAlgorithm (only when the class annotation says KPA).
    key, value = _get(annotations, A + "metric-aggregation-algorithm", A + "metricAggregationAlgorithm")
    if cls == KPA and value and value not in ("linear", "weighted-exponential", "weightedExponential"):
        yield f"{where}[{key}]: {value!r} is not linear or weighted-exponential"
    # validateInitialScale: strconv.Atoi; >= 0; 0 only if allow-zero-initial-scale.
    key, value = _get(annotations, A + "initial-scale", A + "initialScale")
    if key is not None:
        initial = go_int(value, 64)
        if initial is None or initial < 0:
            yield f"{where}[{key}]: {value!r} is not a non-negative integer"
        elif initial == 0 and not config.allow_zero_initial_scale:
            yield (
                f'{where}[{key}]: 0 is refused unless the cluster sets allow-zero-initial-scale: "true" '
                "in config-autoscaler (leave initial-scale out to start at min-scale, or 1)"
            )


def _filter(where: str, entry: Any) -> Iterator[str]:
    # eventing trigger_validation.go ValidateSubscriptionAPIFilter / ValidateOneOf. Knative accepts
    # an empty filter {} (matches everything); Lepton wants exactly one dialect.
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
            # ValidateAttributesNames
            if not ATTRIBUTE.match(str(name)):
                yield f"{where}.{dialect}[{name}]: attribute names must match {ATTRIBUTE.pattern} (lower-case letters and digits, a letter first)"
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
    else:
        # trigger_validation.go ValidateCESQLExpression: cesqlparser.Parse must succeed
        # (https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go).
        for problem in cesql.problems(body):
            yield f"{where}.cesql: invalid value {body!r}: {problem}"


def _destination(where: str, dest: Any, namespace: Any) -> Iterator[str]:
    # knative.dev/pkg apis/duck/v1/destination.go ValidateDestination and
    # knative_reference.go KReference.Validate (https://github.com/knative/pkg/blob/main/apis/duck/v1/destination.go).
    if not isinstance(dest, dict) or not (dest.get("ref") or dest.get("uri")):
        yield f"{where}: needs a ref or a uri"
        return
    ref, uri = dest.get("ref"), dest.get("uri")
    absolute = isinstance(uri, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]+", uri) is not None
    if ref and uri and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", str(uri)):
        yield f"{where}.uri: {uri!r} must be relative when a ref is set"
    if not ref and uri and not absolute:
        yield f"{where}.uri: {uri!r} must be an absolute URL with a host when there is no ref"
    if isinstance(ref, dict):
        for part in ("apiVersion", "kind", "name"):
            if not ref.get(part):
                yield f"{where}.ref.{part}: required"
        if ref.get("namespace") and namespace and ref["namespace"] != namespace:
            yield f"{where}.ref.namespace: {ref['namespace']!r} must be the object's own namespace {namespace!r}"


def _trigger(namespace: Any, spec: dict[str, Any], config: ClusterConfig) -> Iterator[str]:
    # eventing trigger_validation.go TriggerSpec.Validate
    # (https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/eventing/v1/trigger_validation.go).
    broker = spec.get("broker")
    if not broker and not spec.get("brokerRef"):
        yield "spec.broker: required"
    elif broker and spec.get("brokerRef"):
        yield "spec: set only one of broker and brokerRef"
    # trigger_defaults.go setLabels copies the broker name into the eventing.knative.dev/broker label.
    if broker and (not isinstance(broker, str) or not LABEL_VALUE.match(broker)):
        yield f"spec.broker: {broker!r} is not a valid label value (Knative copies it into the eventing.knative.dev/broker label)"
    filt = spec.get("filter") or {}
    for attr, value in (filt.get("attributes") or {}).items() if isinstance(filt, dict) else ():
        # ValidateAttributeFilters / ValidateAttributesNames
        if not ATTRIBUTE.match(str(attr)):
            yield f"spec.filter.attributes[{attr}]: attribute names must match {ATTRIBUTE.pattern} (lower-case letters and digits, a letter first)"
        if not isinstance(value, str):
            yield f"spec.filter.attributes[{attr}]: values must be strings"
    for i, entry in enumerate(spec.get("filters") or []):
        yield from _filter(f"spec.filters.{i}", entry)
    yield from _destination("spec.subscriber", spec.get("subscriber"), namespace)
    delivery = spec.get("delivery") or {}
    if isinstance(delivery, dict):
        yield from _delivery(delivery, namespace, config)


def _delivery(delivery: dict[str, Any], namespace: Any, config: ClusterConfig) -> Iterator[str]:
    # eventing pkg/apis/duck/v1/delivery_types.go DeliverySpec.Validate
    # (https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/duck/v1/delivery_types.go).
    if "backoffPolicy" in delivery and delivery["backoffPolicy"] not in ("linear", "exponential"):
        yield f"spec.delivery.backoffPolicy: {delivery['backoffPolicy']!r} is not 'linear' or 'exponential'"
    retry = delivery.get("retry")
    if isinstance(retry, int) and retry < 0:
        yield "spec.delivery.retry: must not be negative"
    if "format" in delivery and delivery["format"] not in ("json", "binary"):
        yield f"spec.delivery.format: {delivery['format']!r} is not 'json' or 'binary'"
    if "timeout" in delivery:
        text = delivery["timeout"]
        problem = duration_problem(text)
        if not config.delivery_timeout:
            yield "spec.delivery.timeout: Knative refuses it unless config-features sets delivery-timeout: enabled"
        elif problem:
            yield f"spec.delivery.timeout: {problem}" + (" (Knative refuses a zero timeout)" if period_seconds(text) == 0 else "")
        elif period_seconds(text) == 0:
            yield f"spec.delivery.timeout: {text!r} is zero; Knative refuses a zero timeout"
    if "backoffDelay" in delivery:
        text = delivery["backoffDelay"]
        problem = duration_problem(text)
        if problem:
            yield f"spec.delivery.backoffDelay: {problem}"
        elif period_seconds(text) == 0 and (retry or 0) > 0:
            # Knative accepts it, but then retries at once with no pause between attempts
            # (pkg/kncloudevents/retries.go RetryConfigFromDeliverySpec: delay * 2^n or delay * n).
            yield f"spec.delivery.backoffDelay: {text!r} is zero: Knative would retry at once, with no pause between attempts"
    if "deadLetterSink" in delivery:
        yield from _destination("spec.delivery.deadLetterSink", delivery["deadLetterSink"], namespace)


def _pingsource(namespace: Any, spec: dict[str, Any], config: ClusterConfig) -> Iterator[str]:
    # eventing pkg/apis/sources/v1/ping_validation.go PingSourceSpec.Validate
    # (https://github.com/knative/eventing/blob/knative-v1.22.2/pkg/apis/sources/v1/ping_validation.go).
    yield from cron_problems(spec.get("schedule", ""), spec.get("timezone"))
    data, data64 = spec.get("data") or "", spec.get("dataBase64") or ""
    json_type = spec.get("contentType") == "application/json"  # exactly; '+json' or parameters skip the check
    limit = config.ping_data_max_size
    if data and data64:
        yield "spec: data and dataBase64 are mutually exclusive"
    elif data64:
        if limit > -1 and len(data64) > limit:
            yield f"spec.dataBase64: {len(data64)} bytes exceeds the cluster's data-max-size {limit}"
        try:  # Go base64.StdEncoding.DecodeString skips \r and \n, and needs padding
            decoded = base64.b64decode(re.sub(r"[\r\n]", "", str(data64)), validate=True)
        except (binascii.Error, ValueError):
            yield "spec.dataBase64: is not standard base64"
        else:
            if json_type:
                problem = json_object_problem(decoded.decode("utf-8", "replace"))
                if problem:
                    yield f"spec.dataBase64: decoded, {problem} (contentType application/json needs a JSON object)"
    elif data:
        if limit > -1 and len(str(data).encode()) > limit:
            yield f"spec.data: {len(str(data).encode())} bytes exceeds the cluster's data-max-size {limit}"
        if json_type:
            # validateJSON: json.Unmarshal into a map[string]interface{}.
            problem = json_object_problem(str(data))
            if problem:
                yield f"spec.data: {problem} (contentType application/json needs a JSON object)"
    yield from _destination("spec.sink", spec.get("sink"), namespace)
