"""Unit tests for the webhook mirrors in lepton_knative.rules and lepton_knative.cesql.

Every table named *_GO holds verdicts recorded by running the Go code that Knative itself runs on
the same inputs (eventing knative-v1.22.2 and its vendored cloudevents sdk-go sql/v2,
robfig/cron v3.0.1 as PingSource configures it, rickb777/date v1.13.0 period.Parse, and Go's
time.ParseDuration, strconv.ParseFloat and encoding/json), so these tests pin Knative's behaviour,
not our reading of it. Where Lepton is deliberately stricter than Go, the test says so.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lepton_knative import cesql, rules
from lepton_knative.rules import ClusterConfig, rule_errors
from lepton_knative.validation import problems

ANN = ("spec", "template", "metadata", "annotations")
A = "autoscaling.knative.dev/"
C0 = ("spec", "template", "spec", "containers", 0)
REF = {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "fn"}}


def service() -> dict[str, Any]:
    probe = {"httpGet": {"path": "/readyz"}, "periodSeconds": 1}
    container = {
        "name": "function",
        "image": "registry.example/lepton:1",
        "env": [{"name": "LEPTON_FUNCTION", "value": "fn"}],
        "envFrom": [{"secretRef": {"name": "lepton-fn", "optional": True}}],
        "ports": [{"containerPort": 8080, "name": "http1"}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "readinessProbe": probe,
        "livenessProbe": {"httpGet": {"path": "/healthz"}, "periodSeconds": 10},
        "startupProbe": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1, "failureThreshold": 300},
    }
    annotations = {
        A + "class": rules.KPA,
        A + "min-scale": "0",
        A + "max-scale": "10",
        A + "target": "100",
        A + "target-utilization-percentage": "70",
        A + "scale-to-zero-pod-retention-period": "60s",
        A + "window": "60s",
    }
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": "fn", "namespace": "ml", "labels": {"app.kubernetes.io/managed-by": "lepton"}},
        "spec": {
            "template": {
                "metadata": {"name": "fn-0123abcd", "annotations": annotations},
                "spec": {"containerConcurrency": 8, "timeoutSeconds": 30, "containers": [container]},
            }
        },
    }


def trigger() -> dict[str, Any]:
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": "fn-1a2b3c4d", "namespace": "ml"},
        "spec": {
            "broker": "default",
            "subscriber": copy.deepcopy(REF),
            "filters": [{"exact": {"type": "com.example.order"}}],
            "delivery": {
                "retry": 3,
                "backoffPolicy": "exponential",
                "backoffDelay": "PT0.2S",
                "timeout": "PT30S",
                "deadLetterSink": copy.deepcopy(REF),
            },
        },
    }


def pingsource() -> dict[str, Any]:
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": "fn-5e6f7a8b", "namespace": "ml"},
        "spec": {
            "schedule": "*/5 * * * *",
            "timezone": "Europe/Paris",
            "contentType": "application/json",
            "data": '{"tick": true}',
            "sink": copy.deepcopy(REF),
        },
    }


BASE = {"Service": service, "Trigger": trigger, "PingSource": pingsource}


def mutated(kind: str, path: tuple, value: Any) -> dict[str, Any]:
    obj = BASE[kind]()
    node = obj
    for part in path[:-1]:
        node = node[part] if isinstance(part, int) else node.setdefault(part, {})
    if value is KeyError:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return obj


@pytest.mark.parametrize("kind", BASE)
def test_base_objects_pass_schema_and_rules(kind):
    assert problems(BASE[kind]()) == []


# (kind, path, value, a substring of the expected message, or None when the object must pass)
CASES = [
    # 1. Reserved env vars (serving k8s_validation.go reservedEnvVars) and Kubernetes env names.
    (
        "Service",
        C0 + ("env",),
        [{"name": "PORT", "value": "1"}],
        "spec.template.spec.containers.0.env: 'PORT' is reserved by Knative (it sets PORT, K_SERVICE, K_CONFIGURATION, K_REVISION itself)",
    ),
    ("Service", C0 + ("env",), [{"name": "K_SERVICE", "value": "1"}], "'K_SERVICE' is reserved by Knative"),
    ("Service", C0 + ("env",), [{"name": "K_CONFIGURATION", "value": "1"}], "'K_CONFIGURATION' is reserved"),
    ("Service", C0 + ("env",), [{"name": "K_REVISION", "value": "1"}], "'K_REVISION' is reserved"),
    ("Service", C0 + ("env",), [{"name": "K_SINK", "value": "1"}], None),
    ("Service", C0 + ("env",), [{"name": "my.var-1", "value": "1"}], None),  # allowed by Kubernetes >= 1.34
    ("Service", C0 + ("env",), [{"name": "A=B", "value": "1"}], "'A=B' is not a valid variable name"),
    ("Service", C0 + ("env",), [{"name": "", "value": "1"}], "every variable needs a name"),
    ("Service", C0 + ("env",), [{"name": "X", "value": "1"}, {"name": "X", "value": "2"}], "'X' is set twice"),
    (
        "Service",
        C0 + ("envFrom",),
        [{"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}],
        "needs exactly one of configMapRef or secretRef",
    ),
    ("Service", C0 + ("envFrom",), [{"secretRef": {"name": "Bad_Name"}}], "secretRef.name: 'Bad_Name' is not a DNS-1123 subdomain"),
    # 6. Autoscaling annotations (serving pkg/apis/autoscaling/annotation_validation.go).
    ("Service", ANN + (A + "target-utilization-percentage",), "0", "target-utilization-percentage]: 0 is outside 1..100"),
    ("Service", ANN + (A + "target-utilization-percentage",), "100.5", "is outside 1..100"),
    ("Service", ANN + (A + "target-utilization-percentage",), "seventy", "'seventy' is not a number"),
    ("Service", ANN + (A + "target-utilization-percentage",), "100", None),
    ("Service", ANN + (A + "target-utilization-percentage",), "1", None),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "7200s", "'7200s' is not a duration between 0s and 1h"),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "-1s", "is not a duration between 0s and 1h"),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "60", "is not a duration between 0s and 1h"),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "1h", None),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "0s", None),
    ("Service", ANN + (A + "scale-to-zero-pod-retention-period",), "1.5s", None),  # no precision rule here
    ("Service", ANN + (A + "initial-scale",), "0", "0 is refused unless the cluster sets allow-zero-initial-scale"),
    ("Service", ANN + (A + "initial-scale",), "-1", "'-1' is not a non-negative integer"),
    ("Service", ANN + (A + "initial-scale",), "x", "'x' is not a non-negative integer"),
    ("Service", ANN + (A + "initial-scale",), "3", None),
    ("Service", ANN + (A + "initialScale",), "0", "initialScale]: 0 is refused"),  # the legacy key too
    ("Service", ANN + (A + "min-scale",), "-1", "min-scale]: '-1' is not a non-negative integer"),
    ("Service", ANN + (A + "min-scale",), "2147483648", "is outside 0..2147483647"),
    ("Service", ANN + (A + "min-scale",), "+2", None),  # strconv.ParseInt accepts a sign
    ("Service", ANN + (A + "max-scale",), "0", None),  # 0: unlimited
    ("Service", ANN + (A + "window",), "5s", "'5s' is not a duration between 6s and 1h"),
    ("Service", ANN + (A + "window",), "6.5s", "'6.5s' must be whole seconds"),
    ("Service", ANN + (A + "window",), "1m30s", None),
    ("Service", ANN + (A + "scale-down-delay",), "1.5s", "must be whole seconds"),
    ("Service", ANN + (A + "scale-down-delay",), "2h", "is not a duration between 0s and 1h"),
    ("Service", ANN + (A + "scale-down-delay",), "30s", None),
    ("Service", ANN + (A + "target",), "0.009", "target]: 0.009 is below 0.01"),
    ("Service", ANN + (A + "target",), "0.01", None),
    ("Service", ANN + (A + "panic-window-percentage",), "101", "is outside 1..100"),
    ("Service", ANN + (A + "panic-threshold-percentage",), "100", "is outside 110..1000"),
    ("Service", ANN + (A + "target-burst-capacity",), "-2", "is below 0"),
    ("Service", ANN + (A + "target-burst-capacity",), "-1", None),
    ("Service", ANN + (A + "metric",), "cpu", "'cpu' is not a metric the kpa.autoscaling.knative.dev autoscaler supports"),
    ("Service", ANN + (A + "metric",), "rps", None),
    ("Service", ANN + (A + "activation-scale",), "1", "1 must be greater than 1"),
    ("Service", ANN + (A + "activation-scale",), "11", "11 is above max-scale 10"),
    ("Service", ANN + (A + "metric-aggregation-algorithm",), "median", "is not linear or weighted-exponential"),
    ("Service", ANN + (A + "class",), "x.knative.dev", "'x.knative.dev' is not one of"),
    (
        "Service",
        ("metadata", "annotations"),
        {A + "min-scale": "1"},
        "autoscaling annotations must be put under spec.template.metadata.annotations",
    ),
    (
        "Service",
        ("metadata", "annotations"),
        {"serving.knative.dev/rollout-duration": "1.5s"},
        "rollout-duration]: '1.5s' must be whole seconds",
    ),
    ("Service", ("metadata", "annotations"), {"serving.knative.dev/rollout-duration": "90s"}, None),
    ("Service", ANN + ("serving.knative.dev/progress-deadline",), "10.5s", "must be whole seconds"),
    # 7. Probes: startupProbe is allowed (fieldmask.go ContainerMask), validated by validateProbe.
    ("Service", C0 + ("startupProbe",), {"httpGet": {"path": "/readyz"}}, "startupProbe.httpGet.port: required: set port: 8080"),
    (
        "Service",
        C0 + ("startupProbe",),
        {"httpGet": {"path": "/readyz", "port": "http1"}},
        "startupProbe.httpGet.port: 'http1': set port: 8080",
    ),
    (
        "Service",
        C0 + ("startupProbe",),
        {"httpGet": {"path": "/readyz", "port": "web"}},
        "'web' must match the container port name 'http1'",
    ),
    ("Service", C0 + ("startupProbe",), {"tcpSocket": {"port": 8080}}, None),
    ("Service", C0 + ("startupProbe",), {"periodSeconds": 1}, "startupProbe: needs one of httpGet, tcpSocket, exec or grpc"),
    (
        "Service",
        C0 + ("startupProbe",),
        {"httpGet": {"path": "readyz", "port": 8080}},
        "startupProbe.httpGet.path: 'readyz' must start with '/'",
    ),
    (
        "Service",
        C0 + ("startupProbe",),
        {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": -1},
        "startupProbe.periodSeconds: -1 must not be negative",
    ),
    (
        "Service",
        C0 + ("startupProbe",),
        {"httpGet": {"path": "/readyz", "port": 8080}, "successThreshold": 2},
        "successThreshold: 2 must be 1 for a startupProbe",
    ),
    ("Service", C0 + ("livenessProbe",), {"httpGet": {"path": "/h"}, "tcpSocket": {}}, "livenessProbe: set only one of httpGet, tcpSocket"),
    ("Service", C0 + ("livenessProbe",), {"httpGet": {"path": "/h"}, "successThreshold": 3}, "must be 1 for a livenessProbe"),
    ("Service", C0 + ("readinessProbe",), {"periodSeconds": 1}, None),  # Knative adds a tcpSocket
    (
        "Service",
        C0 + ("readinessProbe",),
        {"httpGet": {"path": "/r"}, "periodSeconds": 0, "failureThreshold": 3},
        "readinessProbe.failureThreshold: not allowed when periodSeconds is 0",
    ),
    ("Service", C0 + ("readinessProbe",), {"httpGet": {"path": "/r"}, "periodSeconds": 0}, None),
    ("Service", C0 + ("readinessProbe",), {"httpGet": {"path": "/r"}, "successThreshold": 3}, None),
    (
        "Service",
        C0 + ("readinessProbe",),
        {"httpGet": {"path": "/r"}, "timeoutSeconds": -1},
        "readinessProbe.timeoutSeconds: -1 must not be negative",
    ),
    # 8. Other Service rules.
    ("Service", ("spec", "template", "metadata", "name"), "fn-" + "a" * 61, "must be a DNS-1123 label starting with 'fn-'"),
    ("Service", ("spec", "template", "metadata", "name"), "fn-" + "a" * 60, None),
    ("Service", ("metadata", "name"), "1fn", "'1fn' is not a DNS-1123 label starting with a letter"),
    ("Service", ("metadata", "namespace"), "1ml", None),  # namespaces may start with a digit
    ("Service", ("spec", "template", "spec", "containerConcurrency"), 1001, "containerConcurrency: 1001 is outside 0..1000"),
    ("Service", ("spec", "template", "spec", "containerConcurrency"), 0, None),
    ("Service", ("spec", "template", "spec", "timeoutSeconds"), 601, "timeoutSeconds: 601 is outside 1..600"),
    ("Service", ("spec", "template", "spec", "timeoutSeconds"), 0, "0 would mean Knative's default"),
    ("Service", C0 + ("ports",), [{"containerPort": 8012}], "containerPort: 8012 is reserved by Knative's queue-proxy"),
    ("Service", C0 + ("ports",), [{"containerPort": 8080, "name": "http"}], "ports.0.name: 'http' is not allowed"),
    ("Service", C0 + ("ports",), [{"containerPort": 8080, "name": "h2c"}], None),
    ("Service", C0 + ("ports",), [{"containerPort": 8080}, {"containerPort": 9000}], "more than one container port"),
    ("Service", C0 + ("ports",), [{"containerPort": 8080, "protocol": "UDP"}], "protocol: 'UDP' is not TCP"),
    ("Service", C0 + ("name",), "queue-proxy", "'queue-proxy' is reserved by Knative"),
    ("Service", C0 + ("resources",), {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, "requests.cpu: '2' is above its limit '1'"),
    ("Service", C0 + ("resources",), {"requests": {"memory": "1e3"}, "limits": {"memory": "1k"}}, None),
    ("Service", C0 + ("resources",), {"limits": {"nvidia.com/gpu": "0.5"}}, "nvidia.com/gpu: '0.5' must be a whole number"),
    ("Service", C0 + ("resources",), {"requests": {"nvidia.com/gpu": "1"}, "limits": {"nvidia.com/gpu": "1"}}, None),
    ("Service", C0 + ("resources",), {"requests": {"memory": "lots"}}, "resources.requests.memory: 'lots' is not a Kubernetes quantity"),
    # 4. Delivery durations (rickb777/date period keeps one decimal).
    (
        "Trigger",
        ("spec", "delivery", "backoffDelay"),
        "PT0.05S",
        "backoffDelay: 'PT0.05S' has more than one decimal; Knative keeps one decimal of a second (of each field) and would read it as 0s",
    ),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT1.25S", "would read it as 1.2s"),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT0.1S", None),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT1,5S", None),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT0S", "'PT0S' is zero: Knative would retry at once"),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT1.2xS", "'PT1.2xS' is not an ISO-8601 duration"),  # Go reads 1.2 s
    ("Trigger", ("spec", "delivery", "backoffDelay"), "PT-1S", "'PT-1S' is not an ISO-8601 duration"),  # Go: negative
    ("Trigger", ("spec", "delivery", "backoffDelay"), "0.2s", "'0.2s' is not an ISO-8601 duration"),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "P4000Y", "would overflow and read it as negative"),
    ("Trigger", ("spec", "delivery", "backoffDelay"), "P1DT2H", None),
    ("Trigger", ("spec", "delivery", "timeout"), "PT0S", "timeout: 'PT0S' is zero; Knative refuses a zero timeout"),
    ("Trigger", ("spec", "delivery", "timeout"), "PT0.05S", "(Knative refuses a zero timeout)"),
    ("Trigger", ("spec", "delivery", "timeout"), "PT0.5S", None),
    ("Trigger", ("spec", "delivery", "retry"), -1, "spec.delivery.retry: must not be negative"),
    ("Trigger", ("spec", "delivery", "format"), "xml", "format: 'xml' is not 'json' or 'binary'"),
    # 5. CESQL (trigger_validation.go ValidateCESQLExpression).
    ("Trigger", ("spec", "filters"), [{"cesql": "type = 'a' AND subject LIKE 'b%'"}], None),
    (
        "Trigger",
        ("spec", "filters"),
        [{"cesql": "type = 'a' AND"}],
        "spec.filters.0.cesql: invalid value \"type = 'a' AND\": CESQL syntax error: expected a value",
    ),
    ("Trigger", ("spec", "filters"), [{"not": {"cesql": "a-5 = 1"}}], "spec.filters.0.not.cesql: invalid value 'a-5 = 1'"),
    ("Trigger", ("spec", "filters"), [{"cesql": "FOO(type)"}], "unknown CESQL function FOO"),
    ("Trigger", ("spec", "filters"), [{"cesql": "LEFT(type) = 'a'"}], "LEFT takes 2 arguments, got 1"),
    ("Trigger", ("spec", "filters"), [{"cesql": "LOWER(type)"}], "a filter must be true or false, but this expression gives a string"),
    ("Trigger", ("spec", "filters"), [{"cesql": ""}], "spec.filters.0.cesql: needs an expression"),
    # 8. Trigger: broker, destinations, attribute names.
    ("Trigger", ("spec", "broker"), "b" * 64, "is not a valid label value (Knative copies it into the eventing.knative.dev/broker label)"),
    ("Trigger", ("spec", "broker"), "b" * 63, None),
    ("Trigger", ("spec", "broker"), KeyError, "spec.broker: required"),
    ("Trigger", ("spec", "brokerRef"), {"name": "default"}, "set only one of broker and brokerRef"),
    ("Trigger", ("spec", "subscriber"), {"uri": "/relative"}, "subscriber.uri: '/relative' must be an absolute URL"),
    ("Trigger", ("spec", "subscriber"), {"uri": "http://fn.ml.svc"}, None),
    ("Trigger", ("spec", "subscriber"), {**REF, "uri": "http://x.example/p"}, "must be relative when a ref is set"),
    ("Trigger", ("spec", "subscriber"), {**REF, "uri": "/path"}, None),
    (
        "Trigger",
        ("spec", "subscriber"),
        {"ref": {**REF["ref"], "namespace": "other"}},
        "ref.namespace: 'other' must be the object's own namespace 'ml'",
    ),
    ("Trigger", ("spec", "filters"), [{"exact": {"Type": "a"}}], "exact[Type]: attribute names must match"),
    ("Trigger", ("spec", "filter"), {"attributes": {"type1": "a"}}, None),
    # 2. PingSource data: exactly "application/json" makes Knative decode data into a map.
    (
        "PingSource",
        ("spec", "data"),
        "[1, 2]",
        "spec.data: is an array, not a JSON object (contentType application/json needs a JSON object)",
    ),
    ("PingSource", ("spec", "data"), "42", "is a number, not a JSON object"),
    ("PingSource", ("spec", "data"), "{", "spec.data: is not valid JSON"),
    ("PingSource", ("spec", "data"), "null", None),
    ("PingSource", ("spec", "contentType"), "text/plain", None),  # data stays '{"tick": true}'
    ("PingSource", ("spec", "dataBase64"), "eyJhIjoxfQ==", "spec: data and dataBase64 are mutually exclusive"),
    # 3. Schedules (robfig/cron via PingSourceSpec.Validate) and time zones.
    (
        "PingSource",
        ("spec", "schedule"),
        "0 0 * * 7",
        "day-of-week: end of range (7) above maximum (6): 7 (day-of-week is 0-6 or SUN-SAT; 7 is not Sunday here)",
    ),
    ("PingSource", ("spec", "schedule"), "0 0 L * *", "(robfig/cron has no L, W or #)"),
    ("PingSource", ("spec", "schedule"), "@every 1h", "PingSource refuses @every"),
    (
        "PingSource",
        ("spec", "schedule"),
        "* * * * * */1",
        "is not a 5-field cron schedule: Knative's PingSource would read the first of 6 fields as seconds",
    ),
    ("PingSource", ("spec", "schedule"), "* * * *", "is not a 5-field cron schedule"),
    ("PingSource", ("spec", "schedule"), "", "left empty, Knative would run it every minute"),
    ("PingSource", ("spec", "schedule"), "0 0 ? * MON-FRI", None),
    ("PingSource", ("spec", "schedule"), "@daily", None),
    ("PingSource", ("spec", "timezone"), "Mars/Olympus", "spec.timezone: 'Mars/Olympus' is not an IANA time zone"),
    ("PingSource", ("spec", "timezone"), KeyError, None),
    ("PingSource", ("spec", "sink"), {"ref": {"kind": "Service", "name": "fn"}}, "spec.sink.ref.apiVersion: required"),
]


@pytest.mark.parametrize("kind, path, value, expected", CASES)
def test_rule(kind, path, value, expected):
    obj = mutated(kind, path, copy.deepcopy(value))
    if kind == "PingSource" and path[-1] == "contentType":
        obj["spec"]["data"] = "not json"
    found = list(rule_errors(obj))
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found
    assert all("\n" not in f for f in found)


def test_cluster_config_changes_the_limits():
    obj = mutated("Service", ANN + (A + "initial-scale",), "0")
    assert list(rule_errors(obj, ClusterConfig(allow_zero_initial_scale=True))) == []
    obj = mutated("Service", ("spec", "template", "spec", "timeoutSeconds"), 900)
    assert list(rule_errors(obj, ClusterConfig(max_revision_timeout_seconds=1200))) == []
    obj = mutated("Service", ANN + (A + "max-scale",), "0")
    assert any("max-scale-limit" in f for f in rule_errors(obj, ClusterConfig(max_scale_limit=50)))
    assert any("delivery-timeout" in f for f in rule_errors(trigger(), ClusterConfig(delivery_timeout=False)))
    assert list(
        rule_errors(
            mutated("Service", ("spec", "template", "spec", "containerConcurrency"), 0),
            ClusterConfig(allow_container_concurrency_zero=False),
        )
    )


# --- CESQL ------------------------------------------------------------------------------------

CESQL_GO = [
    ("type = 'com.example'", True),
    ("TRUE", True),
    ("true", True),
    ("tRuE", True),
    ("a-5", False),
    ("a - 5", True),
    ("1-1", False),
    ("1 - 1", True),
    ("--10", True),
    ("-'10'", True),
    ("a+5", False),
    ("a +5", False),
    ("5 + TRUE", True),
    ("x LIKE 123", False),
    ("x LIKE 'a%'", True),
    ('x NOT LIKE "b_"', True),
    ("x like 'a' like 'b'", True),
    ("NOT a LIKE 'x'", True),
    ("ABC(", False),
    ("ABC()", True),
    ("abc1()", False),
    ("1ab = 2", True),
    ("1ab(2)", False),
    ("EXISTS subject", True),
    ("EXISTS (subject)", False),
    ("EXISTS 1", False),
    ("EXISTS ab1", True),
    ("exists TRUE", False),
    ("a IN ()", False),
    ("a IN (1)", True),
    ("a NOT IN (1, 'x', b)", True),
    ("a NOT b", False),
    ("2147483647 = a", True),
    ("2147483648 = a", False),
    ("-2147483648 = a", True),
    ("-2147483649 = a", False),
    ("+3 = a", True),
    ("'it''s' = a", True),
    ('"a""b" = a', True),
    ("'a\\'b' = a", True),
    ("'abc", False),
    ('"abc', False),
    ("a.b = 1", False),
    ("type == 'x'", False),
    ("a != b", True),
    ("a <> b", True),
    ("a <= b >= c", True),
    ("a AND b OR c XOR d", True),
    ("(a)", True),
    ("((a)", False),
    ("a)", False),
    ("", False),
    ("  ", False),
    ("concat_ws(',', a)", True),
    ("CONCAT_WS()", True),
    ("is_bool(a)", True),
    ("x_y = 1", False),
    ("x_y(1)", True),
    ("LOWER(a) = 'x'", True),
    ("FOO(1)", True),
    ("NOT", False),
    ("a AND", False),
    ("a = - b", True),
    ("a = NOT b", True),
    ("- a * b", True),
    ("a IN (1,)", False),
    ("a IN (1 2)", False),
    ("LIKE = 1", False),
    ("in = 1", False),
    ("a = 1 AND (b = 2 OR c LIKE 'x%')", True),
    ("1.5 = a", False),
    ("!a", False),
    ("subject = 'café'", True),
    ("sübject = 1", False),
    ("a\n=\t1", True),
    ("Σ = 1", False),
    # From the CloudEvents SQL TCK (sdk-go sql/v2/test/tck).
    ("4 * (2 + 4) / 2", True),
    ("'5' + '3'", True),
    ("'ab\\c' LIKE 'ab\\c'", True),
    ("myext LIKE 'abc%123\\%456\\_d_f'", True),
    ("'a\"b\\'c'", True),
    ("int(hop) < int(ttl) and int(hop) < 1000", True),
    ("123 NOT IN (1, 2, 3, 12, 13, 23, 123)", True),
    ("SUBSTRING('Sakila', -5, 3)", True),
    ("true and (1 != 1 / 0)", True),
]


@pytest.mark.parametrize("expr, go_accepts", CESQL_GO)
def test_cesql_parse_matches_the_go_parser(expr, go_accepts):
    try:
        cesql.parse(expr)
        accepted = True
    except cesql.CESQLError:
        accepted = False
    assert accepted == go_accepts


@pytest.mark.parametrize("expr, where", [("type = 'a';", 10), ("a!", 1)])
def test_cesql_refuses_characters_the_go_lexer_drops_silently(expr, where):
    # Go accepts both (the ANTLR lexer skips ';' and '!'); Lepton refuses them.
    with pytest.raises(cesql.CESQLError, match="drop it silently") as caught:
        cesql.parse(expr)
    assert caught.value.position == where


@pytest.mark.parametrize(
    "expr, message, where",
    [
        ("type = 'a' AND", "expected a value", 14),
        ("a-5", "unexpected '-5' after a complete expression", 1),
        ("x LIKE 5", "expected a quoted LIKE pattern, found '5'", 7),
        ("a IN ()", "found ')'", 6),
        ("EXISTS (a)", "expected an attribute name after EXISTS", 7),
        ("2147483648 = a", "does not fit in 32 bits", 0),
    ],
)
def test_cesql_errors_say_where(expr, message, where):
    with pytest.raises(cesql.CESQLError) as caught:
        cesql.parse(expr)
    assert message in str(caught.value) and caught.value.position == where
    assert f"(at character {where + 1})" in str(caught.value)


def test_cesql_precedence_follows_antlr():
    tree = cesql.parse("NOT a LIKE 'x' AND b = 1 + 2 * 3 OR c")
    assert tree.op == "AND"  # AND/OR/XOR share a precedence and associate to the right
    like, rest = tree.args
    assert (like.kind, like.args[0].kind) == ("like", "not")  # NOT binds tighter than LIKE
    assert rest.op == "OR" and rest.args[0].op == "="
    assert rest.args[0].args[1].op == "+" and rest.args[0].args[1].args[1].op == "*"
    assert cesql.parse("- a * b").kind == "binary"  # (-a) * b
    assert cesql.parse("EXISTS Subject").value == "subject"  # identifiers are lower-cased


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("type = 'a'", None),
        ("subject", None),
        ("IS_INT(x)", None),
        ("BOOL(x)", None),
        ("CONCAT() = ''", None),
        ("SUBSTRING(a, 1, 2) = 'x'", None),
        ("CONCAT_WS(',', a, b, c) = 'x'", None),
        ("FOO(1) = 1", "unknown CESQL function FOO"),
        ("SUBSTRING(a) = 'x'", "SUBSTRING takes 2 to 3 arguments, got 1"),
        ("CONCAT_WS() = ''", "CONCAT_WS takes 1 or more arguments, got 0"),
        ("ABS(1, 2) = 1", "ABS takes 1 argument, got 2"),
        ("1 + 1", "gives an int"),
        ("'x'", "gives a string"),
        ("-a", "gives an int"),
        ("UPPER(a)", "gives a string"),
    ],
)
def test_cesql_problems_beyond_parsing(expr, problem):
    found = cesql.problems(expr)
    assert found == [] if problem is None else any(problem in p for p in found), found


# --- cron ---------------------------------------------------------------------------------------

ROBFIG_GO = [
    ("* * * * *", True),
    ("*/5 * * * *", True),
    ("0 3 * * 1-5", True),
    ("* * * * * */1", True),
    ("0 0 * * 7", False),
    ("0 0 * * 0-7", False),
    ("0 0 * * 0,6", True),
    ("0 0 L * *", False),
    ("0 0 * * 5#2", False),
    ("0 0 1W * *", False),
    ("@daily", True),
    ("@hourly", True),
    ("@yearly", True),
    ("@annually", True),
    ("@monthly", True),
    ("@weekly", True),
    ("@midnight", True),
    ("@every 1h", True),
    ("@reboot", False),
    ("? * * * *", True),
    ("0 0 ? * *", True),
    ("* * * * MON-FRI", True),
    ("0 0 1 JAN *", True),
    ("0 0 * jan-dec/2 sun", True),
    ("*/0 * * * *", False),
    ("60 * * * *", False),
    ("0 24 * * *", False),
    ("0 0 0 * *", False),
    ("0 0 * 13 *", False),
    ("1,,2 * * * *", True),
    ("*-5 * * * *", True),
    ("+5 * * * *", True),
    ("-1 * * * *", False),
    ("5-1 * * * *", False),
    ("1-5/2 * * * *", True),
    ("5/15 * * * *", True),
    ("* * * *", False),
    ("* * * * * * *", False),
    ("@hourly ", False),
    (" @hourly", False),
    ("0  3\t*  * *", True),
    ("TZ=Europe/Paris 0 3 * * *", True),
    ("CRON_TZ=Mars/Olympus 0 3 * * *", False),
]


@pytest.mark.parametrize("spec, go_accepts", ROBFIG_GO)
def test_robfig_parser_matches_pingsources(spec, go_accepts):
    assert (rules.robfig_error(spec) is None) == go_accepts


@pytest.mark.parametrize("schedule, go_accepts", [("@hourly ", True), (" @hourly", True), ("@every 1h", False), ("0 0 * * 7", False)])
def test_pingsource_trims_the_schedule_after_a_time_zone(schedule, go_accepts):
    # PingSource prefixes "CRON_TZ=<timezone> ", after which robfig trims the rest.
    assert (rules.cron_problems(schedule, "Europe/Paris") == []) == go_accepts


def test_standard_parser_has_no_seconds_field():
    assert rules.robfig_error("* * * * *", second_optional=False) is None
    assert "expected exactly 5 fields" in rules.robfig_error("* * * * * *", second_optional=False)


def test_cron_examples_used_by_lepton_are_accepted():
    for schedule in ("*/5 * * * *", "0 3 * * 1-5", "0 3 * * *"):
        assert rules.cron_problems(schedule, "Europe/Paris") == []


# --- durations ----------------------------------------------------------------------------------

PERIOD_GO = [  # (text, what Knative waits in ns or None when refused, IsZero, IsNegative)
    ("PT0.2S", 200000000, False, False),
    ("PT0.05S", 0, True, False),
    ("PT0.1S", 100000000, False, False),
    ("PT1.25S", 1200000000, False, False),
    ("PT1.2xS", 1200000000, False, False),
    ("PT1,5S", 1500000000, False, False),
    ("PT.S", 0, True, False),
    ("PT1.S", 1000000000, False, False),
    ("P0", 0, True, False),
    ("-P0", None, False, False),
    ("PT", None, False, False),
    ("P", None, False, False),
    ("P1DT", 86400000000000, False, False),
    ("PT0S", 0, True, False),
    ("PT-5S", -5000000000, False, True),
    ("-PT5S", -5000000000, False, True),
    ("-PT-5S", 5000000000, False, False),
    ("+PT5S", 5000000000, False, False),
    ("PT1H30M", 5400000000000, False, False),
    ("PT90M", 5400000000000, False, False),
    ("PT3600S", 3600000000000, False, False),
    ("P1D", 86400000000000, False, False),
    ("P1W", 604800000000000, False, False),
    ("P1Y", 31556952000000000, False, False),
    ("P1M", 2629746000000000, False, False),
    ("P1.5D", 129600000000000, False, False),
    ("PT0.5M", 30000000000, False, False),
    ("pt1s", None, False, False),
    ("PT1S1S", None, False, False),
    ("PTS", None, False, False),
    ("P4000Y", -6796856332361793536, False, True),
    ("PT10M0.5S", 600500000000, False, False),
    ("P1Y2M3W4DT5H6M7.8S", 38994811800000000, False, False),
]


@pytest.mark.parametrize("text, nanos, zero, negative", PERIOD_GO)
def test_period_parse_matches_rickb777_date(text, nanos, zero, negative):
    period = rules.knative_period(text)
    if nanos is None:
        assert period is None
        return
    assert rules.period_nanos(period) == nanos
    assert (period == (0,) * 6) == zero and any(v < 0 for v in period) == negative


@pytest.mark.parametrize(
    "text, problem",
    [
        ("PT0.2S", None),
        ("PT30S", None),
        ("PT1H", None),
        ("P1D", None),
        ("PT0.5M", None),
        ("PT0.05S", "Knative keeps one decimal of a second"),
        ("PT0.15S", "would read it as 0.1s"),
        ("PT0.5M1.25S", "would read it as 31.2s"),
        ("PT1.2xS", "not an ISO-8601 duration"),
        ("-PT5S", "not an ISO-8601 duration"),
        ("P0", "not an ISO-8601 duration"),
        (0.2, "not an ISO-8601 duration"),
        ("P4000Y", "read it as negative"),
    ],
)
def test_duration_problem(text, problem):
    found = rules.duration_problem(text)
    assert found is None if problem is None else problem in found
    if problem is None:
        assert rules.period_seconds(text) is not None


DURATION_GO = [
    ("0", 0),
    ("-0", 0),
    ("+0", 0),
    ("", None),
    ("1s", 10**9),
    ("1.5s", 1500000000),
    (".5s", 500000000),
    ("5.s", 5 * 10**9),
    (".s", None),
    ("1h30m", 5400 * 10**9),
    ("1h0m1s", 3601 * 10**9),
    ("90m", 5400 * 10**9),
    ("10", None),
    ("1.5ns", 1),
    ("1us", 1000),
    ("1µs", 1000),
    ("1μs", 1000),
    ("1d", None),
    ("-1s", -(10**9)),
    ("+1s", 10**9),
    ("1s.ms", None),
    ("9223372036854775807ns", 2**63 - 1),
    ("9223372036854775808ns", None),
    ("-9223372036854775808ns", -(2**63)),
    ("2562047h47m16.854775807s", 2**63 - 1),
    ("2562048h", None),
    ("0.000000001s", 1),
    ("1 s", None),
]


@pytest.mark.parametrize("text, nanos", DURATION_GO)
def test_go_duration_matches_time_parse_duration(text, nanos):
    assert rules.go_duration(text) == nanos


FLOAT_GO = [
    ("1", 1.0),
    ("-1", -1.0),
    ("0.01", 0.01),
    ("1e2", 100.0),
    ("1e400", None),
    ("0x1p-2", 0.25),
    ("0x1.8", None),
    ("1_0", 10.0),
    ("1__0", None),
    (" 1", None),
    ("1.", 1.0),
    (".5", 0.5),
    ("+.5e-3", 0.0005),
    ("1e", None),
    ("abc", None),
    ("0X1P+3", 8.0),
    ("1e1_0", 1e10),
    ("1e_1", None),
]


@pytest.mark.parametrize("text, value", FLOAT_GO)
def test_go_float_matches_strconv(text, value):
    assert rules.go_float(text) == value


JSON_GO = [
    ('{"a":1}', True),
    ("[1,2]", False),
    ("null", True),
    ('"s"', False),
    ("1", False),
    ("true", False),
    ("{", False),
    ('{"a":NaN}', False),
    ('{"a":1e999}', False),
    (' {"a":[1,{"b":null}]} ', True),
    ('{"a":1,}', False),
    ("{'a':1}", False),
    ('{"a":1}x', False),
    ('{"a":"\\ud800"}', True),
    ('{"a":01}', False),
    ('{"a":Infinity}', False),
    ('{"a":1}\n', True),
    ("\ufeff{}", False),
    ('{"a":-0.0e+1}', True),
    ('{"a":1,"a":2}', True),
    ('{"a":"\\u0000"}', True),
    ('{"a":"\t"}', False),
]


@pytest.mark.parametrize("text, go_accepts", JSON_GO)
def test_json_object_problem_matches_pingsource(text, go_accepts):
    assert (rules.json_object_problem(text) is None) == go_accepts


@pytest.mark.parametrize(
    "text, value",
    [
        ("1", "1"),
        ("250m", "0.25"),
        ("1Gi", str(2**30)),
        ("1e3", "1000"),
        ("1.5k", "1500"),
        (".5", "0.5"),
        ("-1", None),
        ("1 Gi", None),
        ("1GB", None),
    ],
)
def test_quantity(text, value):
    got = rules.quantity(text)
    assert (got is None) if value is None else got == rules.Decimal(value)


# --- rules the CASES table leaves out -----------------------------------------------------------
# Traffic, annotations that depend on each other, legacy keys, labels, filter shapes, delivery
# destinations and PingSource dataBase64; `changed` sets several fields of one base object.


def changed(kind: str, *edits: tuple[tuple, Any]) -> dict[str, Any]:
    obj = BASE[kind]()
    for path, value in edits:
        node = obj
        for part in path[:-1]:
            node = node[part] if isinstance(part, int) else node.setdefault(part, {})
        if value is KeyError:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return obj


TRAFFIC = ("spec", "traffic")
SPLIT = [{"revisionName": "fn-0123abcd", "percent": 90}, {"latestRevision": True, "percent": 10, "tag": "canary"}]

MORE_CASES = [
    # Traffic (route_validation.go validateTrafficList).
    ("Service", [(TRAFFIC, SPLIT)], None),
    ("Service", [(TRAFFIC, [{**SPLIT[0], "percent": 80}, SPLIT[1]])], "spec.traffic: traffic targets sum to 90, want 100"),
    ("Service", [(TRAFFIC, [{**SPLIT[0], "percent": 100}, SPLIT[1]])], "traffic targets sum to 110, want 100"),
    (
        "Service",
        [(TRAFFIC, [{**SPLIT[0], "tag": "canary"}, SPLIT[1]])],
        "spec.traffic[1].tag: multiple definitions for 'canary' (also spec.traffic[0].tag)",
    ),
    ("Service", [(TRAFFIC, [SPLIT[0], {**SPLIT[1], "tag": "Canary"}])], "spec.traffic[1].tag: 'Canary' is not a DNS-1035 label"),
    ("Service", [(TRAFFIC, [{"revisionName": "fn-0123abcd", "tag": "pinned"}, {"latestRevision": True, "percent": 100}])], None),
    ("Service", [(TRAFFIC, [])], None),  # no targets: Knative's default of 100% to the latest
    # Annotations that depend on each other, and the legacy camel-case keys.
    ("Service", [(ANN + (A + "min-scale",), "5"), (ANN + (A + "max-scale",), "3")], "max-scale]: 3 is below min-scale 5"),
    ("Service", [(ANN + (A + "min-scale",), "3"), (ANN + (A + "max-scale",), "3")], None),
    ("Service", [(ANN + (A + "min-scale",), "3"), (ANN + (A + "activation-scale",), "2")], "activation-scale]: 2 is below min-scale 3"),
    ("Service", [(ANN + (A + "activation-scale",), "two")], "activation-scale]: 'two' is not an integer"),
    ("Service", [(ANN + (A + "activation-scale",), "10")], None),  # equal to max-scale
    ("Service", [(ANN + (A + "min-scale",), KeyError), (ANN + (A + "minScale",), "-1")], "minScale]: '-1' is not a non-negative integer"),
    ("Service", [(ANN + (A + "max-scale",), KeyError), (ANN + (A + "maxScale",), "x")], "maxScale]: 'x' is not a non-negative integer"),
    (
        "Service",
        [(ANN + (A + "max-scale",), KeyError), (ANN + (A + "maxScale",), "2"), (ANN + (A + "min-scale",), "4")],
        "max-scale]: 2 is below min-scale 4",
    ),
    ("Service", [(ANN + (A + "minScale",), "-1"), (ANN + (A + "min-scale",), "1")], None),  # the new key wins
    ("Service", [(ANN + (A + "panicWindowPercentage",), "0.5")], "panicWindowPercentage]: 0.5 is outside 1..100"),
    ("Service", [(ANN + (A + "target",), 100)], "target]: annotation values must be strings, got 100"),
    ("Service", [(ANN + (A + "window",), "61m")], "'61m' is not a duration between 6s and 1h"),
    ("Service", [(ANN + (A + "window",), "1h")], None),
    ("Service", [(ANN + (A + "scale-down-delay",), "-1s")], "'-1s' is not a duration between 0s and 1h"),
    (
        "Service",
        [(ANN + (A + "scale-to-zero-pod-retention-period",), KeyError), (ANN + (A + "scaleToZeroPodRetentionPeriod",), "2h")],
        "scaleToZeroPodRetentionPeriod]: '2h' is not a duration",
    ),
    ("Service", [(ANN + (A + "class",), rules.HPA), (ANN + (A + "metric",), "cpu")], None),  # HPA scales on any metric
    (
        "Service",
        [(ANN + (A + "class",), rules.HPA), (ANN + (A + "metric",), "")],
        "is not a metric the hpa.autoscaling.knative.dev autoscaler",
    ),
    ("Service", [(ANN + (A + "metric",), "concurrency")], None),
    ("Service", [(ANN + (A + "class",), KeyError), (ANN + (A + "metric-aggregation-algorithm",), "median")], None),  # only under KPA
    ("Service", [(ANN + (A + "metricAggregationAlgorithm",), "weightedExponential")], None),
    (
        "Service",
        [(("metadata", "annotations"), {"serving.knative.dev/rollout-duration": "-5s"})],
        "rollout-duration]: '-5s' must not be negative",
    ),
    ("Service", [(("metadata", "annotations"), {"serving.knative.dev/rollout-duration": "soon"})], "'soon' is not a Go duration"),
    # Names, labels, containers.
    (
        "Service",
        [(("spec", "template", "metadata", "name"), "other-0123abcd")],
        "'other-0123abcd' must be a DNS-1123 label starting with 'fn-'",
    ),
    ("Service", [(("metadata", "namespace"), "ML")], "metadata.namespace: 'ML' is not a DNS-1123 label"),
    ("Service", [(("metadata", "labels"), {"app": "a b"})], "metadata.labels[app]: 'a b' is not a valid label value"),
    ("Service", [(("metadata", "labels"), {"-app": "x"})], "metadata.labels[-app]: not a valid label key"),
    (
        "Service",
        [(("spec", "template", "metadata", "labels"), {"tier": 1})],
        "spec.template.metadata.labels[tier]: 1 is not a valid label value",
    ),
    ("Service", [(("spec", "template", "spec", "containers"), [])], "one serving container expected, got 0"),
    # Filter shapes (trigger_validation.go ValidateSubscriptionAPIFilter), nested paths included.
    ("Trigger", [(("spec", "filters"), [{"exact": {}}])], "spec.filters.0.exact: needs a non-empty map of attribute to value"),
    ("Trigger", [(("spec", "filters"), [{"prefix": {"type": ""}}])], "spec.filters.0.prefix[type]: needs a non-empty string"),
    ("Trigger", [(("spec", "filters"), [{"suffix": {"type": 5}}])], "spec.filters.0.suffix[type]: needs a non-empty string"),
    ("Trigger", [(("spec", "filters"), [{"exact": {"type": ""}}])], None),  # exact may want an empty value
    ("Trigger", [(("spec", "filters"), [{"all": []}])], "spec.filters.0.all: needs a non-empty list of filters"),
    ("Trigger", [(("spec", "filters"), [{"regex": {"type": "x"}}])], "spec.filters.0: unknown filter dialect 'regex'"),
    ("Trigger", [(("spec", "filters"), [{}])], "spec.filters.0: each filter needs exactly one dialect"),
    ("Trigger", [(("spec", "filters"), [{"exact": {"a": "1"}, "prefix": {"b": "2"}}])], "each filter needs exactly one dialect"),
    (
        "Trigger",
        [(("spec", "filters"), [{"any": [{"exact": {"type": "a"}}, {"not": {"exact": {"Type": "a"}}}]}])],
        "spec.filters.0.any.1.not.exact[Type]: attribute names must match",
    ),
    ("Trigger", [(("spec", "filter"), {"attributes": {"type": 5}})], "spec.filter.attributes[type]: values must be strings"),
    # Delivery and destinations.
    ("Trigger", [(("spec", "delivery", "backoffPolicy"), "random")], "backoffPolicy: 'random' is not 'linear' or 'exponential'"),
    ("Trigger", [(("spec", "delivery", "retry"), 0), (("spec", "delivery", "backoffDelay"), "PT0S")], None),  # no retries to pause between
    ("Trigger", [(("spec", "delivery", "deadLetterSink"), {})], "spec.delivery.deadLetterSink: needs a ref or a uri"),
    ("Trigger", [(("spec", "delivery", "deadLetterSink"), {"uri": "dead"})], "deadLetterSink.uri: 'dead' must be an absolute URL"),
    ("Trigger", [(("spec", "subscriber"), KeyError)], "spec.subscriber: needs a ref or a uri"),
    ("Trigger", [(("spec", "subscriber"), {"ref": {"apiVersion": "v1", "kind": "Service"}})], "spec.subscriber.ref.name: required"),
    # PingSource: dataBase64 and content types other than exactly application/json.
    ("PingSource", [(("spec", "data"), KeyError), (("spec", "dataBase64"), "eyJ0aWNrIjogdHJ1ZX0=")], None),  # {"tick": true}
    (
        "PingSource",
        [(("spec", "data"), KeyError), (("spec", "dataBase64"), "WzFd")],  # [1]
        "spec.dataBase64: decoded, is an array, not a JSON object (contentType application/json needs a JSON object)",
    ),
    ("PingSource", [(("spec", "data"), KeyError), (("spec", "dataBase64"), "not base64!")], "spec.dataBase64: is not standard base64"),
    ("PingSource", [(("spec", "data"), KeyError), (("spec", "dataBase64"), "eyJ0aWNrIjogdHJ1\nZX0=")], None),  # Go skips newlines
    ("PingSource", [(("spec", "contentType"), "application/json; charset=utf-8"), (("spec", "data"), "[1]")], None),
    ("PingSource", [(("spec", "schedule"), KeyError)], "left empty, Knative would run it every minute"),
]


@pytest.mark.parametrize("kind, edits, expected", MORE_CASES)
def test_more_rules(kind, edits, expected):
    found = list(rule_errors(changed(kind, *edits)))
    if expected is None:
        assert found == []
    else:
        assert any(expected in f for f in found), found
    assert all("\n" not in f for f in found)


def test_a_valid_traffic_split_also_passes_the_schema():
    assert problems(changed("Service", (TRAFFIC, SPLIT))) == []


def test_the_clusters_ping_data_limit_counts_bytes():
    data = changed("PingSource", (("spec", "data"), '{"k": "é"}'))  # 10 characters, 11 bytes
    assert list(rule_errors(data, ClusterConfig(ping_data_max_size=11))) == []
    assert list(rule_errors(data, ClusterConfig(ping_data_max_size=10))) == ["spec.data: 11 bytes exceeds the cluster's data-max-size 10"]
    encoded = changed("PingSource", (("spec", "data"), KeyError), (("spec", "dataBase64"), "eyJ0aWNrIjogdHJ1ZX0="))
    assert any("spec.dataBase64: 20 bytes exceeds" in f for f in rule_errors(encoded, ClusterConfig(ping_data_max_size=19)))


def test_the_clusters_max_scale_limit_caps_max_scale():
    over = changed("Service", (ANN + (A + "max-scale",), "60"))
    assert any(
        "max-scale]: 60 is above the cluster's max-scale-limit 50" in f for f in rule_errors(over, ClusterConfig(max_scale_limit=50))
    )
    assert list(rule_errors(changed("Service", (ANN + (A + "max-scale",), "50")), ClusterConfig(max_scale_limit=50))) == []


def test_the_clusters_default_class_decides_which_metrics_are_allowed():
    cpu = changed("Service", (ANN + (A + "class",), KeyError), (ANN + (A + "metric",), "cpu"))
    assert any("is not a metric the kpa" in f for f in rule_errors(cpu))
    assert list(rule_errors(cpu, ClusterConfig(pod_autoscaler_class=rules.HPA))) == []
