"""The fake Kubernetes API (fake_api.py, webhooks.py) is as strict as a cluster running Knative
Serving v1.23 and Eventing v1.22: each test sends a request a real cluster refuses and checks the
fake refuses it the same way. Driven only with the plain `kubernetes` client and httpx."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.helpers import free_port
from tests.knative import webhooks
from tests.knative.fake_api import PLATFORM_USER, SA_TOKEN, TOKEN, FakeCluster, FakeServer

NS = "lepton"
APPLY = {"field_manager": "lepton", "force": True, "_content_type": "application/apply-patch+yaml"}
SERVING, EVENTING, SOURCES = ("serving.knative.dev", "v1"), ("eventing.knative.dev", "v1"), ("sources.knative.dev", "v1")
DENIED_SERVING = 'admission webhook "validation.webhook.serving.knative.dev" denied the request: validation failed: '
DENIED_EVENTING = 'admission webhook "validation.webhook.eventing.knative.dev" denied the request: validation failed: '


@dataclass
class Cluster:
    fake: FakeCluster
    server: FakeServer
    admin: client.ApiClient
    platform: client.ApiClient

    def objects(self, who: str = "platform") -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.platform if who == "platform" else self.admin)

    def core(self, who: str = "platform") -> client.CoreV1Api:
        return client.CoreV1Api(self.platform if who == "platform" else self.admin)

    def apply(self, obj: dict[str, Any], who: str = "platform", **options: Any) -> Any:
        group, version = obj["apiVersion"].split("/")
        plural = {"Service": "services", "Trigger": "triggers", "PingSource": "pingsources", "Broker": "brokers"}[obj["kind"]]
        meta = obj["metadata"]
        return self.objects(who).patch_namespaced_custom_object(
            group, version, meta.get("namespace", NS), plural, meta["name"], obj, **{**APPLY, **options}
        )

    def get(self, plural: str, name: str, reads: int = 1) -> dict[str, Any]:
        group, version = {"services": SERVING, "revisions": SERVING, "triggers": EVENTING, "pingsources": SOURCES}[plural]
        for _ in range(reads):
            obj = self.objects("admin").get_namespaced_custom_object(group, version, NS, plural, name)
        return obj


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One server for the module; each test gets it reset (`cluster`)."""
    folder = tmp_path_factory.mktemp("kubeconfig")
    fake = FakeCluster()
    with FakeServer(fake, free_port()) as server:
        admin = config.new_client_from_config(config_file=str(server.kubeconfig(folder / "admin")))
        platform = config.new_client_from_config(config_file=str(server.kubeconfig(folder / "platform", as_platform=True)))
        try:
            yield Cluster(fake, server, admin, platform)
        finally:
            admin.close()
            platform.close()


@pytest.fixture
def cluster(running: Cluster) -> Cluster:
    running.fake.reset()
    return running


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(verify=False) as session:
        yield session


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return caught.value.status, json.loads(caught.value.body)


def service(
    name: str = "hello",
    revision: str | None = "hello-00001",
    image: str = "registry.example/lepton:1",
    annotations: dict[str, str] | None = None,
    **template_spec: Any,
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "metadata": {"labels": {"lepton.dev/function": name}},
        "spec": {"containers": [{"image": image}], **template_spec},
    }
    if revision:
        template["metadata"]["name"] = revision
    if annotations:
        template["metadata"]["annotations"] = annotations
    return {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NS, "labels": {"lepton.dev/function": name}},
        "spec": {"template": template},
    }


def trigger(name: str = "orders", **spec: Any) -> dict[str, Any]:
    body = {"broker": "default", "subscriber": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "orders"}}}
    body.update(spec)
    return {
        "apiVersion": "eventing.knative.dev/v1",
        "kind": "Trigger",
        "metadata": {"name": name, "namespace": NS},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


def ping(name: str = "ticker", **spec: Any) -> dict[str, Any]:
    body = {"schedule": "0 3 * * *", "sink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "ticker"}}}
    body.update(spec)
    return {
        "apiVersion": "sources.knative.dev/v1",
        "kind": "PingSource",
        "metadata": {"name": name, "namespace": NS},
        "spec": {k: v for k, v in body.items() if v is not None},
    }


# --- the client calls the backend makes, as the platform's service account -------------------


def test_the_backend_client_calls_work_with_the_platform_rbac(cluster):
    objects, core = cluster.objects(), cluster.core()
    assert cluster.apply(service()) is None  # this client returns None for a 201 from a custom-object patch
    assert cluster.fake.applies == 1
    created = objects.get_namespaced_custom_object(*SERVING, NS, "services", "hello")
    assert created["metadata"]["generation"] == 1 and created["metadata"]["managedFields"][0]["manager"] == "lepton"
    listed = objects.list_namespaced_custom_object(*SERVING, NS, "services", label_selector="lepton.dev/function=hello")
    assert listed["kind"] == "ServiceList" and [i["metadata"]["name"] for i in listed["items"]] == ["hello"]
    assert cluster.objects("admin").list_namespaced_custom_object(
        *SERVING, NS, "revisions", label_selector="serving.knative.dev/service=hello"
    )["items"]
    assert objects.get_namespaced_custom_object(*SERVING, NS, "revisions", "hello-00001")["metadata"]["name"] == "hello-00001"

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "fn-hello", "labels": {"lepton.dev/function": "hello"}},
        "stringData": {"token": "s3cret"},
    }
    stored = core.patch_namespaced_secret("fn-hello", NS, secret, **APPLY)
    assert stored.type == "Opaque" and base64.b64decode(stored.data["token"]) == b"s3cret" and stored.string_data is None
    assert [s.metadata.name for s in core.list_namespaced_secret(NS, label_selector="lepton.dev/function=hello").items] == ["fn-hello"]
    assert cluster.core("admin").read_namespaced_secret("fn-hello", NS).data == stored.data
    code, status = refused(core.read_namespaced_secret, "fn-hello", NS)  # the platform never reads a Secret back
    assert code == 403 and status["reason"] == "Forbidden"

    cluster.fake.add_pod("hello-00001", "hello-00001-deployment-5d8f-abcde", log="starting\nready\nserved 1\n")
    pods = core.list_namespaced_pod(NS, label_selector="serving.knative.dev/service=hello")
    assert [p.metadata.name for p in pods.items] == ["hello-00001-deployment-5d8f-abcde"]
    assert [c.name for c in pods.items[0].spec.containers] == ["user-container", "queue-proxy"]
    assert (
        core.read_namespaced_pod_log("hello-00001-deployment-5d8f-abcde", NS, container="user-container", tail_lines=2)
        == "ready\nserved 1\n"
    )

    core.delete_namespaced_secret("fn-hello", NS)
    objects.delete_namespaced_custom_object(*SERVING, NS, "services", "hello")
    code, status = refused(objects.get_namespaced_custom_object, *SERVING, NS, "services", "hello")
    assert (code, status["reason"], status["message"]) == (404, "NotFound", 'services.serving.knative.dev "hello" not found')
    code, status = refused(core.delete_namespaced_secret, "fn-hello", NS)
    assert (code, status["message"]) == (404, 'secrets "fn-hello" not found')
    assert not cluster.fake.of("revisions") and not cluster.fake.of("pods"), "deleting a Service deletes its Revisions and pods"


def test_wrong_or_missing_token_is_401(cluster, http):
    url = f"{cluster.server.url}/apis/serving.knative.dev/v1/namespaces/{NS}/services"
    for headers in ({}, {"Authorization": "Bearer nope"}):
        answer = http.get(url, headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    assert http.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert http.get(url, headers={"Authorization": f"Bearer {SA_TOKEN}"}).status_code == 200


# --- RBAC ----------------------------------------------------------------------------------


ROLE = [
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "r"},
        "rules": [
            {"apiGroups": ["serving.knative.dev"], "resources": ["services", "revisions"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},
        ],
    },
    {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "r"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
        "subjects": [{"kind": "ServiceAccount", "name": "lepton-platform"}],
    },
]


def test_rbac_denials_read_like_the_api_server(cluster):
    cluster.fake.rbac_documents = ROLE  # in namespace lepton, as kustomize puts it
    cluster.apply(service(), who="admin")
    code, status = refused(cluster.objects().delete_namespaced_custom_object, *SERVING, NS, "revisions", "hello-00001")
    assert code == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'revisions.serving.knative.dev "hello-00001" is forbidden: User "system:serviceaccount:lepton:lepton-platform" '
        'cannot delete resource "revisions" in API group "serving.knative.dev" in the namespace "lepton"'
    )
    assert status["details"] == {"name": "hello-00001", "group": "serving.knative.dev", "kind": "revisions"}
    code, status = refused(cluster.core().list_namespaced_secret, "default")
    assert status["message"] == (
        'secrets is forbidden: User "system:serviceaccount:lepton:lepton-platform" cannot list resource '
        '"secrets" in API group "" in the namespace "default"'
    )
    code, status = refused(cluster.objects().list_cluster_custom_object, *SERVING, "services")
    assert status["message"].endswith('cannot list resource "services" in API group "serving.knative.dev" at the cluster scope')
    code, status = refused(cluster.objects().list_namespaced_custom_object, *EVENTING, NS, "brokers")
    assert code == 403, "the Role grants nothing on brokers"
    assert cluster.core().list_namespaced_secret(NS).items == []


def test_apply_that_creates_needs_create_and_subresources_need_their_own_rule(cluster):
    cluster.fake.rbac_documents = [
        {
            "kind": "Role",
            "metadata": {"name": "r"},
            "rules": [
                {"apiGroups": ["serving.knative.dev"], "resources": ["services"], "verbs": ["get", "patch"]},
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["delete"], "resourceNames": ["allowed"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
            ],
        },
        {
            "kind": "RoleBinding",
            "metadata": {"name": "r"},
            "roleRef": {"kind": "Role", "name": "r"},
            "subjects": [{"kind": "ServiceAccount", "name": "lepton-platform"}],
        },
    ]
    code, status = refused(cluster.apply, service())
    assert code == 403
    assert status["message"] == (
        'services.serving.knative.dev "hello" is forbidden: User "system:serviceaccount:lepton:lepton-platform" '
        'cannot create resource "services" in API group "serving.knative.dev" in the namespace "lepton"'
    )
    cluster.apply(service(), who="admin")
    cluster.apply({**service(), "metadata": {**service()["metadata"], "labels": {"team": "ml"}}})  # patching an existing one is fine
    cluster.fake.add_pod("hello-00001", "p1", log="x\n")
    code, status = refused(cluster.core().read_namespaced_pod_log, "p1", NS, container="user-container")
    assert status["message"] == (
        f'pods "p1" is forbidden: User "{PLATFORM_USER}" cannot get resource "pods/log" in API group "" in the namespace "lepton"'
    )
    code, status = refused(cluster.core().delete_namespaced_secret, "other", NS)
    assert code == 403, "resourceNames limits the rule to the named objects"
    code, status = refused(cluster.core().delete_namespaced_secret, "allowed", NS)
    assert code == 404


# --- routing and protocol ------------------------------------------------------------------


def test_only_server_side_apply_and_the_served_routes(cluster, http):
    base, auth = cluster.server.url, {"Authorization": f"Bearer {TOKEN}"}
    url = f"{base}/apis/serving.knative.dev/v1/namespaces/{NS}/services/hello"
    answer = http.patch(url, headers={**auth, "Content-Type": "application/merge-patch+json"}, content=b"{}")
    assert (answer.status_code, answer.json()["reason"]) == (415, "UnsupportedMediaType")
    answer = http.patch(url, headers={**auth, "Content-Type": "application/apply-patch+yaml"}, content=json.dumps(service()))
    assert answer.status_code == 422
    assert answer.json()["message"] == 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch'
    assert answer.json()["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}
    ]
    answer = http.post(f"{base}/apis/serving.knative.dev/v1/namespaces/{NS}/services", headers=auth, json=service())
    assert (answer.status_code, answer.json()["reason"]) == (405, "MethodNotAllowed")
    answer = http.get(f"{base}/apis/apps/v1/namespaces/{NS}/deployments", headers=auth)
    assert (answer.status_code, answer.json()["message"]) == (404, "the server could not find the requested resource")
    wrong = {**service(), "metadata": {**service()["metadata"], "name": "other"}}
    answer = http.patch(
        url + "?fieldManager=lepton", headers={**auth, "Content-Type": "application/apply-patch+yaml"}, content=json.dumps(wrong)
    )
    assert answer.json()["message"] == "the name of the object (other) does not match the name on the URL (hello)"
    answer = http.patch(
        url + "?fieldManager=lepton",
        headers={**auth, "Content-Type": "application/apply-patch+yaml"},
        content=json.dumps({**service(), "apiVersion": "serving.knative.dev/v1beta1"}),
    )
    assert answer.json()["message"] == (
        "Incorrect version specified in apply patch. Specified patch version: serving.knative.dev/v1beta1, expected: serving.knative.dev/v1"
    )
    yaml_body = "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  template:\n    spec:\n      containers:\n      - image: a/b:1\n"
    answer = http.patch(url + "?fieldManager=kubectl", headers={**auth, "Content-Type": "application/apply-patch+yaml"}, content=yaml_body)
    assert answer.status_code == 201, answer.text


def test_label_selectors(cluster):
    for name, labels in (("a", {"tier": "gpu", "team": "ml"}), ("b", {"tier": "cpu"}), ("c", {})):
        cluster.core("admin").patch_namespaced_secret(
            name, NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "labels": labels}}, **APPLY
        )

    def names(selector: str) -> list[str]:
        return [s.metadata.name for s in cluster.core("admin").list_namespaced_secret(NS, label_selector=selector).items]

    assert names("tier=gpu") == ["a"] and names("tier!=gpu") == ["b", "c"] and names("tier") == ["a", "b"]
    assert names("!tier") == ["c"] and names("tier in (cpu,gpu),team") == ["a"] and names("tier notin (gpu)") == ["b", "c"]
    code, status = refused(cluster.core("admin").list_namespaced_secret, NS, label_selector="a=b=c")
    assert code == 400


# --- server-side apply -----------------------------------------------------------------------


def annotated(values: dict[str, str], **kwargs: Any) -> dict[str, Any]:
    svc = service(**kwargs)
    svc["metadata"]["annotations"] = values
    return svc


def test_conflicts_with_another_manager_and_force(cluster):
    cluster.apply(annotated({"lepton.dev/owner": "platform"}))
    cluster.fake.edit_as("kubectl-edit", "services", NS, "hello", {"metadata": {"annotations": {"lepton.dev/owner": "alice"}}})
    assert cluster.fake.managers("services", NS, "hello")["kubectl-edit"] == {".metadata.annotations.lepton.dev/owner"}
    code, status = refused(cluster.apply, annotated({"lepton.dev/owner": "platform"}), force=False)
    assert (code, status["reason"]) == (409, "Conflict")
    assert status["message"] == (
        'Apply failed with 1 conflict: conflict with "kubectl-edit" using serving.knative.dev/v1: .metadata.annotations.lepton.dev/owner'
    )
    assert status["details"]["causes"] == [
        {
            "reason": "FieldManagerConflict",
            "message": 'conflict with "kubectl-edit" using serving.knative.dev/v1',
            "field": ".metadata.annotations.lepton.dev/owner",
        }
    ]
    cluster.apply(annotated({"lepton.dev/owner": "platform"}), force=True)
    assert cluster.get("services", "hello")["metadata"]["annotations"]["lepton.dev/owner"] == "platform"
    assert "kubectl-edit" not in cluster.fake.managers("services", NS, "hello"), "force moved ownership back"

    other = annotated({"lepton.dev/owner": "robot", "x": "1"})
    code, status = refused(cluster.apply, other, field_manager="robot", force=False)
    assert status["message"] == 'Apply failed with 1 conflict: conflict with "lepton": .metadata.annotations.lepton.dev/owner'


def test_fields_a_manager_stops_applying_are_removed_but_others_stay(cluster):
    cluster.apply(annotated({"a": "1", "b": "2", "shared": "s"}))
    cluster.apply(annotated({"shared": "s", "c": "3"}), field_manager="robot")  # co-owns "shared" (same value): no conflict
    cluster.fake.edit_as("kubectl-edit", "services", NS, "hello", {"metadata": {"annotations": {"d": "4"}}})
    cluster.apply(annotated({"a": "1"}))
    assert cluster.get("services", "hello")["metadata"]["annotations"] == {"a": "1", "shared": "s", "c": "3", "d": "4"}
    fields = cluster.get("services", "hello")["metadata"]["managedFields"]
    assert {f["manager"]: f["operation"] for f in fields} == {"lepton": "Apply", "robot": "Apply", "kubectl-edit": "Update"}
    mine = next(f for f in fields if f["manager"] == "lepton")["fieldsV1"]
    assert mine["f:metadata"]["f:annotations"] == {"f:a": {}} and "f:template" in mine["f:spec"]


def test_items_of_keyed_lists_are_owned_one_by_one(cluster):
    def with_volumes(names: list[str], revision: str) -> dict[str, Any]:
        svc = service(revision=revision)
        svc["spec"]["template"]["spec"]["volumes"] = [{"name": n, "secret": {"secretName": n}} for n in names]
        svc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
            {"name": n, "mountPath": f"/{n}", "readOnly": True} for n in names
        ]
        return svc

    cluster.apply(with_volumes(["a", "b"], "hello-00001"))
    assert '.spec.template.spec.volumes[name="b"].secret.secretName' in cluster.fake.managers("services", NS, "hello")["lepton"]
    cluster.apply(with_volumes(["a"], "hello-00002"))
    assert [v["name"] for v in cluster.get("services", "hello")["spec"]["template"]["spec"]["volumes"]] == ["a"]
    sidecar = with_volumes(["a"], "hello-00003")
    sidecar["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8080}]
    sidecar["spec"]["template"]["spec"]["containers"].append(
        {"name": "proxy", "image": "envoy:1", "readinessProbe": {"tcpSocket": {"port": 9}}}
    )
    code, status = refused(cluster.apply, sidecar)
    assert status["message"] == DENIED_SERVING + (
        "must not set the field(s): spec.template.spec.containers[1].readinessProbe, "
        "spec.template.spec.containers[1].readinessProbe.successThreshold"
    ), "after defaulting"


def test_generation_moves_with_spec_and_resource_version_with_every_write(cluster):
    cluster.apply(service())
    first = cluster.get("services", "hello", reads=2)
    cluster.apply(service())
    again = cluster.get("services", "hello")
    assert again["metadata"]["resourceVersion"] == first["metadata"]["resourceVersion"], "a no-op apply writes nothing"
    cluster.apply(annotated({"note": "metadata only"}))
    meta = cluster.get("services", "hello")["metadata"]
    assert meta["generation"] == 1 and meta["resourceVersion"] != first["metadata"]["resourceVersion"]
    cluster.apply(annotated({"note": "metadata only"}, revision="hello-00002", image="registry.example/lepton:2"))
    assert cluster.get("services", "hello")["metadata"]["generation"] == 2


# --- schema validation -------------------------------------------------------------------------


def test_schema_value_errors_are_422_with_causes(cluster):
    svc = service()
    svc["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "1GB"}}
    code, status = refused(cluster.apply, svc)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"] == [
        {
            "reason": "FieldValueInvalid",
            "field": "spec.template.spec.containers[0].resources.limits.memory",
            "message": 'Invalid value: "1GB": spec.template.spec.containers[0].resources.limits.memory in body should match '
            "'^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$'",
        }
    ]
    assert status["message"].startswith(
        'Service.serving.knative.dev "hello" is invalid: spec.template.spec.containers[0].resources.limits.memory'
    )
    svc = service()
    svc["spec"]["template"]["spec"]["containers"][0]["env"] = [{"value": "no name"}]
    code, status = refused(cluster.apply, svc)
    assert status["details"]["causes"] == [
        {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].env[0].name"}
    ]
    bad = service(name="Hello")
    code, status = refused(cluster.objects().patch_namespaced_custom_object, *SERVING, NS, "services", "Hello", bad, **APPLY)
    assert status["details"]["causes"][0]["field"] == "metadata.name" and "RFC 1123 subdomain" in status["details"]["causes"][0]["message"]


def test_unknown_fields_and_wrong_types_fail_in_the_typed_patch(cluster):
    svc = service()
    svc["spec"]["template"]["spec"]["containerConcurency"] = 5
    code, status = refused(cluster.apply, svc)
    assert code == 500
    assert status["message"] == (
        "failed to create typed patch object (lepton/hello; serving.knative.dev/v1, Kind=Service): "
        ".spec.template.spec.containerConcurency: field not declared in schema"
    )
    svc = service(containerConcurrency="10")
    code, status = refused(cluster.apply, svc)
    assert status["message"].endswith(".spec.template.spec.containerConcurrency: expected numeric (int or float), got string")
    cluster.fake.typed_errors_as_invalid = True
    code, status = refused(cluster.apply, svc)
    assert (code, status["details"]["causes"][0]["field"]) == (422, "spec.template.spec.containerConcurrency")


def test_secrets_are_validated(cluster):
    core = cluster.core()
    code, status = refused(
        core.patch_namespaced_secret,
        "s",
        NS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "not base64!"}},
        **APPLY,
    )
    assert (code, status["message"]) == (400, 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data at input byte 3')
    code, status = refused(
        core.patch_namespaced_secret,
        "s",
        NS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"bad key": "x"}},
        **APPLY,
    )
    assert code == 422 and status["details"]["causes"][0]["field"] == "data[bad key]"
    core.patch_namespaced_secret(
        "s", NS, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}, **APPLY
    )
    code, status = refused(
        core.patch_namespaced_secret,
        "s",
        NS,
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls", "stringData": {"k": "v"}},
        **APPLY,
    )
    assert status["message"] == 'Secret "s" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable'


# --- Knative's webhooks ----------------------------------------------------------------------------


SERVICE_DENIALS = [
    (
        dict(env=[{"name": "K_SERVICE", "value": "x"}]),
        '"K_SERVICE" is a reserved environment variable: spec.template.spec.containers[0].env[0].name',
    ),
    (dict(containerConcurrency=5000), "expected 0 <= 5000 <= 1000: spec.template.spec.containerConcurrency"),
    (dict(timeoutSeconds=900), "expected 0 <= 900 <= 600: spec.template.spec.timeoutSeconds"),
    (dict(revision="v1"), 'invalid value: "v1" must have prefix "hello-": spec.template.metadata.name'),
    (
        dict(annotations={"autoscaling.knative.dev/min-scale": "3", "autoscaling.knative.dev/max-scale": "2"}),
        "max-scale=2 is less than min-scale=3: spec.template.metadata.annotations.autoscaling.knative.dev/max-scale, "
        "spec.template.metadata.annotations.autoscaling.knative.dev/min-scale",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/min-scale": "two"}),
        "invalid value: two: spec.template.metadata.annotations.autoscaling.knative.dev/min-scale",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/window": "2s"}),
        "expected 6s <= 2s <= 1h0m0s: spec.template.metadata.annotations.autoscaling.knative.dev/window",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/window": "60"}),
        "invalid value: 60: spec.template.metadata.annotations.autoscaling.knative.dev/window",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/target": "0.001"}),
        "target 0.001 should be at least 0.01: spec.template.metadata.annotations.autoscaling.knative.dev/target",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/target-utilization-percentage": "150"}),
        "expected 1 <= 150 <= 100: spec.template.metadata.annotations.autoscaling.knative.dev/target-utilization-percentage",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "-1s"}),
        "expected 0s <= -1s <= 1h0m0s: spec.template.metadata.annotations.autoscaling.knative.dev/scale-to-zero-pod-retention-period",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/initial-scale": "0"}),
        "invalid value: 0: spec.template.metadata.annotations.autoscaling.knative.dev/initial-scale=0 not allowed by cluster",
    ),
    (
        dict(annotations={"autoscaling.knative.dev/class": "foo.knative.dev"}),
        "invalid value: foo.knative.dev: spec.template.metadata.annotations.autoscaling.knative.dev/class",
    ),
    (
        dict(readinessProbe={"httpGet": {"path": "/readyz"}, "timeoutSeconds": 5}),
        "timeoutSeconds is disallowed when periodSeconds is zero: spec.template.spec.containers[0].readinessProbe.timeoutSeconds",
    ),
    (
        dict(livenessProbe={"httpGet": {"path": "/healthz"}, "tcpSocket": {}}),
        "expected exactly one, got both: spec.template.spec.containers[0].livenessProbe.httpGet, spec.template.spec.containers[0].livenessProbe.tcpSocket",
    ),
    (
        dict(startupProbe={"httpGet": {"path": "/", "port": "metrics"}}),
        "invalid value: metrics: spec.template.spec.containers[0].startupProbe.httpGet.port\nProbe port must match container port",
    ),
    (
        dict(ports=[{"containerPort": 8012}]),
        "invalid value: 8012 is a reserved port: spec.template.spec.containers[0].ports.containerPort\n8012 is a reserved port, please use a different value",
    ),
    (
        dict(ports=[{"containerPort": 8080}, {"containerPort": 9000}]),
        "more than one container port is set: spec.template.spec.containers[*].ports\nOnly a single port is allowed across all containers",
    ),
    (dict(nodeSelector={"gpu": "true"}), "must not set the field(s): spec.template.spec.nodeSelector"),
    (
        dict(image="Not A Valid Image"),
        "Failed to parse image reference: spec.template.spec.containers[0].image\n"
        'image: "Not A Valid Image", error: could not parse reference: Not A Valid Image',
    ),
]


@pytest.mark.parametrize(("change", "message"), SERVICE_DENIALS, ids=[m.split(":")[0][:40] for _, m in SERVICE_DENIALS])
def test_serving_webhook_denials(cluster, change, message):
    change = dict(change)
    container_keys = ("env", "readinessProbe", "livenessProbe", "startupProbe", "ports")
    svc = service(
        revision=change.pop("revision", "hello-00001"),
        image=change.pop("image", "registry.example/lepton:1"),
        annotations=change.pop("annotations", None),
        **{k: v for k, v in change.items() if k not in container_keys},
    )
    svc["spec"]["template"]["spec"]["containers"][0].update({k: v for k, v in change.items() if k in container_keys})
    code, status = refused(cluster.apply, svc)
    assert (code, status["reason"], status["message"]) == (400, "BadRequest", DENIED_SERVING + message)
    assert "details" not in status


def test_what_knative_serving_accepts(cluster):
    """startupProbe is allowed on the serving container without any feature flag in v1.23."""
    svc = service(
        annotations={
            "autoscaling.knative.dev/min-scale": "1",
            "autoscaling.knative.dev/max-scale": "3",
            "autoscaling.knative.dev/window": "90s",
            "autoscaling.knative.dev/target": "0.5",
        }
    )
    svc["spec"]["template"]["spec"]["containers"][0].update(
        startupProbe={"httpGet": {"path": "/readyz"}, "periodSeconds": 1, "failureThreshold": 120},
        readinessProbe={"httpGet": {"path": "/readyz"}, "periodSeconds": 5, "timeoutSeconds": 2},
        ports=[{"containerPort": 8000, "name": "http1"}],
    )
    cluster.apply(svc)
    assert cluster.get("services", "hello")["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"] == "TCP", "CRD default"


def test_verify_name_change(cluster):
    cluster.apply(service())
    code, status = refused(cluster.apply, service(image="registry.example/lepton:2"))
    assert status["message"] == (
        DENIED_SERVING + "Saw the following changes without a name change (-old +new): spec.template.metadata.name\n"
        "{*v1.RevisionTemplateSpec}.Spec.PodSpec.Containers[0].Image:\n"
        '\t-: "registry.example/lepton:1"\n\t+: "registry.example/lepton:2"\n'
    )
    with pytest.raises(Exception) as edited:
        cluster.fake.edit_as(
            "kubectl-edit",
            "services",
            NS,
            "hello",
            {"spec": {"template": {"metadata": {"annotations": {"autoscaling.knative.dev/min-scale": "1"}}}}},
        )
    assert "Saw the following changes without a name change" in str(edited.value)
    cluster.apply(service(revision="hello-00002", image="registry.example/lepton:2"))
    cluster.apply(service(revision=None, image="registry.example/lepton:3"))  # generated names: no rule applies


TRIGGER_DENIALS = [
    (dict(broker=None), "missing field(s): spec.broker"),
    (
        dict(filter={"attributes": {"Type": "x"}}),
        'invalid key name "Type": spec.filter.attributes[Type]\nAttribute name must start with a letter and can only contain lowercase alphanumeric',
    ),
    (
        dict(filters=[{"exact": {"type": "a"}, "prefix": {"source": "b"}}]),
        "multiple dialects found, filters can have only one dialect set: ",
    ),
    (dict(filters=[{"cesql": "(type = 'a'"}]), "invalid value: (type = 'a': spec.filters[0].cesql"),
    (dict(filters=[{"cesql": "type == 'a'"}]), "invalid value: type == 'a': spec.filters[0].cesql"),
    (dict(filters=[{"all": [{"cesql": "a LIKE 5"}]}]), "invalid value: a LIKE 5: spec.filters[0].all[0].cesql"),
    (dict(delivery={"backoffPolicy": "fibonacci"}), "invalid value: fibonacci: spec.delivery.backoffPolicy"),
    (dict(delivery={"backoffDelay": "1s"}), "invalid value: 1s: spec.delivery.backoffDelay"),
    (dict(delivery={"retry": -1}), "invalid value: -1: spec.delivery.retry"),
    (dict(delivery={"timeout": "PT0.05S"}), "invalid value: PT0.05S: spec.delivery.timeout"),
    (dict(delivery={"retryAfterMax": "PT1S"}), "must not set the field(s): spec.delivery.retryAfterMax"),
    (dict(subscriber={}), "expected at least one, got none: spec.subscriber.ref, spec.subscriber.uri"),
    (dict(subscriber={"ref": {"kind": "Service", "name": "x"}}), "missing field(s): spec.subscriber.ref.apiVersion"),
    (
        dict(brokerRef={"name": "b", "namespace": "other"}),
        "expected exactly one, got both: spec.broker, spec.brokerRef\nmust not set the field(s): spec.namespace\n"
        "only name, apiVersion and kind are supported fields when feature.CrossNamespaceEventLinks is disabled",
    ),
]


@pytest.mark.parametrize(("change", "message"), TRIGGER_DENIALS, ids=[m.split(":")[0][:40] for _, m in TRIGGER_DENIALS])
def test_eventing_trigger_denials(cluster, change, message):
    code, status = refused(cluster.apply, trigger(**change))
    assert (code, status["message"]) == (400, DENIED_EVENTING + message)


def test_trigger_broker_is_immutable_and_unknown_fields_are_refused(cluster):
    cluster.apply(
        trigger(
            filters=[{"cesql": "type = 'order.created' AND source LIKE '/shop/%'"}],
            delivery={"retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.3S"},
        )
    )
    code, status = refused(cluster.apply, trigger(broker="other"))
    assert status["message"] == (
        DENIED_EVENTING + 'Immutable fields changed (-old +new): broker, spec\n{string}:\n\t-: "default"\n\t+: "other"\n'
    )
    code, status = refused(cluster.apply, {**trigger(name="typo"), "spec": {**trigger()["spec"], "brokr": "x"}})
    assert status["message"] == (
        'admission webhook "webhook.eventing.knative.dev" denied the request: '
        'mutation failed: cannot decode incoming new object: json: unknown field "brokr"'
    )


def test_a_go_panic_in_a_webhook_is_a_500(cluster):
    code, status = refused(cluster.apply, trigger(delivery={"backoffDelay": "-"}))
    assert (code, status["reason"]) == (500, "InternalError")
    assert status["message"] == (
        'Internal error occurred: failed calling webhook "validation.webhook.eventing.knative.dev": failed to call '
        'webhook: Post "https://eventing-webhook.knative-eventing.svc:443/resource-validation?timeout=10s": EOF'
    )
    code, status = refused(cluster.apply, ping(schedule="CRON_TZ=UTC"))
    assert code == 500


def test_serving_decodes_the_template_metadata(cluster):
    """spec.template.metadata preserves unknown fields in the CRD, so only Go's decoding refuses a
    wrong type in an ObjectMeta field the schema does not list (annotations are typed: 500 first)."""
    svc = service()
    svc["spec"]["template"]["metadata"]["generateName"] = 5
    code, status = refused(cluster.apply, svc)
    assert status["message"] == (
        'admission webhook "webhook.serving.knative.dev" denied the request: mutation failed: cannot decode '
        "incoming new object: json: cannot unmarshal number into Go struct field "
        "ObjectMeta.spec.template.metadata.generateName of type string"
    )
    svc["spec"]["template"]["metadata"] = {"name": "hello-00001", "annotations": {"autoscaling.knative.dev/min-scale": 1}}
    code, status = refused(cluster.apply, svc)
    assert (code, status["message"].rsplit(": ", 2)[-2]) == (500, ".spec.template.metadata.annotations.autoscaling.knative.dev/min-scale")


PING_DENIALS = [
    (dict(schedule="0 3 * * 7"), "invalid value: end of range (7) above maximum (6): 7: spec.schedule"),
    (dict(schedule="0 3 * *"), "invalid value: expected 5 to 6 fields, found 4: [0 3 * *]: spec.schedule"),
    (dict(schedule="0 3 L * *"), 'invalid value: failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax: spec.schedule'),
    (dict(schedule="@every 1h"), "invalid value: unsupported descriptor @every: spec.schedule"),
    (dict(schedule="@fortnightly"), "invalid value: unrecognized descriptor: @fortnightly: spec.schedule"),
    (dict(timezone="Mars/Olympus"), "invalid value: provided bad location Mars/Olympus: unknown time zone Mars/Olympus: spec.timezone"),
    (dict(data="{}", dataBase64="e30="), "expected exactly one, got both: spec.data, spec.dataBase64"),
    (
        dict(contentType="application/json", data="[1, 2]"),
        "invalid value: json: cannot unmarshal array into Go value of type map[string]interface {}: spec.data",
    ),
    (dict(contentType="application/json", data='{"a": '), "invalid value: unexpected end of JSON input: spec.data"),
    (
        dict(schedule="CRON_TZ=UTC 0 3 * * *", timezone="Europe/Paris"),
        'invalid value: failed to parse int from CRON_TZ=UTC: strconv.Atoi: parsing "CRON_TZ=UTC": invalid syntax: spec.schedule',
    ),
    (dict(sink=None), "expected at least one, got none: spec.sink.ref, spec.sink.uri"),
    (
        dict(sink={"uri": "/relative"}),
        "invalid value: Relative URI is not allowed when Ref and [apiVersion, kind, name] is absent: spec.sink.uri",
    ),
]


@pytest.mark.parametrize(("change", "message"), PING_DENIALS, ids=[m.split(":")[0][:40] for _, m in PING_DENIALS])
def test_eventing_pingsource_denials(cluster, change, message):
    code, status = refused(cluster.apply, ping(**change))
    assert (code, status["message"]) == (400, DENIED_EVENTING + message)


def test_what_pingsources_accept(cluster):
    for i, change in enumerate(
        [
            dict(schedule="*/5 9-17 * * mon-fri", timezone="Europe/Paris"),
            dict(schedule="30 0 3 * * *"),
            dict(schedule="@hourly"),
            dict(schedule="CRON_TZ=Asia/Tokyo 0 9 * * *"),
            dict(schedule=""),
            dict(contentType="application/json", data='{"ok": true}'),
            dict(contentType="text/plain", data="[1"),
        ]
    ):
        cluster.apply(ping(name=f"p{i}", **change))


def test_reject_forces_a_denial(cluster):
    cluster.fake.reject["hello"] = ("spec.template.spec.containers[0].image", "image must be pinned by digest")
    code, status = refused(cluster.apply, service())
    assert code == 422 and status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "image must be pinned by digest", "field": "spec.template.spec.containers[0].image"}
    ]


# --- the controllers ---------------------------------------------------------------------------


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def test_a_failed_new_revision_leaves_the_previous_one_serving(cluster):
    cluster.apply(service())
    assert "status" not in cluster.get("services", "hello"), "the controller has not seen it yet"
    ready = cluster.get("services", "hello")
    assert condition(ready, "Ready")["status"] == "True" and ready["status"]["observedGeneration"] == 1
    assert ready["status"]["url"] == "http://hello.lepton.example.com"
    assert ready["status"]["traffic"] == [{"latestRevision": True, "percent": 100, "revisionName": "hello-00001"}]

    cluster.fake.fail["hello"] = "Container failed with: exec format error"
    cluster.apply(service(revision="hello-00002", image="registry.example/lepton:2"))
    stale = cluster.get("services", "hello")
    assert stale["status"]["observedGeneration"] == 1 and stale["metadata"]["generation"] == 2
    failed = cluster.get("services", "hello")
    assert failed["status"]["observedGeneration"] == 2
    assert condition(failed, "Ready") | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "False",
        "reason": "RevisionFailed",
        "lastTransitionTime": None,
        "message": 'Revision "hello-00002" failed with message: Container failed with: exec format error.',
    }
    assert condition(failed, "ConfigurationsReady")["reason"] == "RevisionFailed" and condition(failed, "RoutesReady")["status"] == "True"
    assert failed["status"]["latestCreatedRevisionName"] == "hello-00002" and failed["status"]["latestReadyRevisionName"] == "hello-00001"
    assert failed["status"]["url"] == ready["status"]["url"] and failed["status"]["traffic"] == ready["status"]["traffic"]

    revisions = cluster.objects("admin").list_namespaced_custom_object(
        *SERVING, NS, "revisions", label_selector="serving.knative.dev/service=hello"
    )
    by_name = {r["metadata"]["name"]: r for r in revisions["items"]}
    assert condition(by_name["hello-00002"], "Ready")["status"] == "False"
    assert by_name["hello-00001"]["metadata"]["labels"]["lepton.dev/function"] == "hello"
    assert by_name["hello-00001"]["metadata"]["labels"]["serving.knative.dev/configuration"] == "hello"
    assert by_name["hello-00001"]["status"]["actualReplicas"] == 0
    cluster.fake.scale("hello-00001", 2)
    assert cluster.get("revisions", "hello-00001")["status"]["actualReplicas"] == 2


def test_traffic_split_tags_and_a_missing_pinned_revision(cluster):
    cluster.apply(service())
    cluster.get("services", "hello", reads=2)
    cluster.apply(service(revision="hello-00002", image="registry.example/lepton:2"))
    cluster.get("services", "hello", reads=2)
    split = service(revision="hello-00002", image="registry.example/lepton:2")
    split["spec"]["traffic"] = [{"revisionName": "hello-00001", "percent": 90}, {"latestRevision": True, "percent": 10, "tag": "canary"}]
    cluster.apply(split)
    routed = cluster.get("services", "hello", reads=2)
    assert routed["status"]["traffic"] == [
        {"latestRevision": False, "percent": 90, "revisionName": "hello-00001"},
        {
            "latestRevision": True,
            "percent": 10,
            "revisionName": "hello-00002",
            "tag": "canary",
            "url": "http://canary-hello.lepton.example.com",
        },
    ]
    split["spec"]["traffic"][0]["revisionName"] = "hello-00009"
    cluster.apply(split)
    broken = cluster.get("services", "hello", reads=2)
    assert condition(broken, "RoutesReady") | {"lastTransitionTime": None} == {
        "type": "RoutesReady",
        "status": "False",
        "reason": "RevisionMissing",
        "lastTransitionTime": None,
        "message": 'Revision "hello-00009" referenced in traffic not found.',
    }
    assert condition(broken, "Ready")["status"] == "False" and broken["status"]["traffic"] == routed["status"]["traffic"]
    split["spec"]["traffic"][0]["percent"] = 50
    code, status = refused(cluster.apply, split)
    assert status["message"] == DENIED_SERVING + "Traffic targets sum to 60, want 100: spec.traffic"


def test_pods_and_logs(cluster):
    cluster.apply(service())
    cluster.get("services", "hello", reads=2)
    cluster.fake.add_pod("hello-00001", "hello-00001-deployment-7f9c-aaaaa", log="a\nb\nc\n", queue_proxy_log="qp\n")
    core = cluster.core()
    pod = cluster.core("admin").read_namespaced_pod("hello-00001-deployment-7f9c-aaaaa", NS)
    assert pod.metadata.labels["serving.knative.dev/revision"] == "hello-00001" and pod.metadata.labels["app"] == "hello-00001"
    assert pod.status.phase == "Running" and all(s.ready for s in pod.status.container_statuses)
    code, status = refused(core.read_namespaced_pod_log, "hello-00001-deployment-7f9c-aaaaa", NS)
    assert status["message"] == (
        "a container name must be specified for pod hello-00001-deployment-7f9c-aaaaa, choose one of: [user-container queue-proxy]"
    )
    assert core.read_namespaced_pod_log("hello-00001-deployment-7f9c-aaaaa", NS, container="queue-proxy") == "qp\n"
    assert core.read_namespaced_pod_log("hello-00001-deployment-7f9c-aaaaa", NS, container="user-container", tail_lines=1) == "c\n"
    code, status = refused(core.read_namespaced_pod_log, "hello-00001-deployment-7f9c-aaaaa", NS, container="nope")
    assert status["message"] == "container nope is not valid for pod hello-00001-deployment-7f9c-aaaaa"


def test_triggers_and_pingsources_turn_ready_or_fail(cluster):
    cluster.apply(trigger())
    cluster.apply(ping())
    cluster.fake.fail["ticker"] = ("SinkNotFound", 'Sink not found: {"ref":{"name":"ticker"}}')
    assert condition(cluster.get("triggers", "orders", reads=2), "Ready")["status"] == "True"
    assert condition(cluster.get("pingsources", "ticker", reads=2), "Ready")["reason"] == "SinkNotFound"
    cluster.fake.require_brokers = True
    cluster.apply(trigger(name="lonely"))
    assert condition(cluster.get("triggers", "lonely", reads=2), "Ready")["reason"] == "BrokerDoesNotExist"


# --- the Go parsers the webhooks mirror ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tenths_of_seconds"),
    [("PT0.3S", 3), ("PT0.35S", 3), ("PT0.05S", 0), ("PT1M", 600), ("P1DT1S", 864010), ("-PT2S", -20), ("PT1,5S", 15), ("P0", 0)],
)
def test_iso8601_periods_keep_one_decimal(text, tenths_of_seconds):
    assert round(webhooks.parse_period(text).total_seconds() * 10) == tenths_of_seconds


@pytest.mark.parametrize("text", ["", "1s", "PT", "P", "PT1S1H", "PTS", "P1Y2", "T1S"])
def test_iso8601_periods_refused(text):
    with pytest.raises(webhooks.GoError):
        webhooks.parse_period(text)


@pytest.mark.parametrize(
    "expression",
    [
        "type = 'a'",
        "NOT (a = 1) OR b <> 2",
        "EXISTS subject AND subject LIKE 'x%'",
        "a IN (1, 2, 'c')",
        "LENGTH(source) > 3",
        "a NOT IN (1)",
        "-a = -1",
        "'it''s' = x",
        'ABC_DEF(1, "two")',
        "a = 1 ;",
    ],
)
def test_cesql_accepts(expression):
    webhooks.parse_cesql(expression)


@pytest.mark.parametrize(
    "expression", ["(a = 1", "a = 1)", "a ==", "a LIKE b", "a IN ()", "ABC_DEF", "a -5", "a = 99999999999", "   ", "x.y = 1"]
)
def test_cesql_refuses(expression):
    with pytest.raises(webhooks.CESQLError):
        webhooks.parse_cesql(expression)
