"""The platform service with `backend: knative`, as `knative/install` runs it: a real platform
process talking to the fake Kubernetes API (tests/knative/fake_api.py) as its service
account, so every request is checked against the Role in knative/install/rbac.yaml. Function
pods are played by the runtime image's entrypoint with exactly the env of the rendered
Service, its Secret values read from the fake API."""

from __future__ import annotations

import base64
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import lepton
from lepton.loader import load_functions
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.embedded.test_events import STRUCTURED
from tests.helpers import FUNCTIONS, ROOT, Process, free_port, wait_for
from tests.knative.fake_api import PLATFORM_USER, FakeCluster, FakeServer
from tests.knative.pods import pod_env, routed_envs, start_pod
from tests.test_cli_run import lepton_cli

HELLO = ROOT / "examples" / "hello.py"
NS = "lepton"


@dataclass
class Knative:
    platform: PlatformProcess
    server: FakeServer
    env: dict[str, str]
    tmp: Path
    pods: list[Process]

    @property
    def cluster(self) -> FakeCluster:
        return self.server.cluster

    def service(self, name: str) -> dict:
        return self.cluster.get("services", NS, name)

    def address(self, name: str) -> None:
        """Give the Service a loopback URL (its status.url) where its pod will listen."""
        self.cluster.urls[name] = f"http://127.0.0.1:{free_port()}"

    def pod(self, name: str) -> Process:
        """Start the Service's pod at its URL."""
        port = int(self.cluster.urls[name].rsplit(":", 1)[1])
        pod = start_pod(self.cluster, self.service(name), port, self.tmp / f"pod-{port}.log")
        self.pods.append(pod)
        return pod

    def restart(self, **env: str) -> None:
        self.platform.process.stop(signal.SIGTERM)
        self.env.update(env)
        port = int(self.platform.url.rsplit(":", 1)[1])
        self.platform.process = start_platform(self.platform.home, self.tmp / "platform-2.log", port, env=self.env)

    def serving(self, name: str) -> dict[str, str]:
        """The one Revision the Service routes to, and the env its new pods would get."""
        (routed,) = routed_envs(self.cluster, NS, name).items()
        return {"revision": routed[0], **routed[1]}


@pytest.fixture
def knative(tmp_path: Path) -> Iterator[Knative]:
    fake = FakeCluster()
    with FakeServer(fake, free_port()) as server:
        port = free_port()
        env = {
            "KUBECONFIG": str(server.kubeconfig(tmp_path / "kubeconfig", as_platform=True)),
            "LEPTON_BACKEND": "knative",
            "LEPTON_KNATIVE_NAMESPACE": NS,
            "LEPTON_KNATIVE_BROKER_URL": f"{server.url}/broker",
            "LEPTON_KNATIVE_PLATFORM_URL": f"http://127.0.0.1:{port}",
            "LEPTON_KNATIVE_READY_TIMEOUT": "30",
        }
        home = tmp_path / "home"
        platform = PlatformProcess(start_platform(home, tmp_path / "platform.log", port, env=env), home, tmp_path / "src")
        running = Knative(platform, server, env, tmp_path, [])
        try:
            yield running
        finally:
            for pod in running.pods:
                pod.stop()
            running.platform.process.stop(signal.SIGTERM)
    refused = [r for r in fake.requests if r[0] == PLATFORM_USER and r[3] in (401, 403)]
    assert not refused, f"the platform did something its Role does not grant: {refused}"


def source(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name / "main.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_pod_gets_its_credentials_from_the_secret_and_uses_buckets_through_the_platform(knative):
    knative.address("touch")
    (deployed,) = knative.platform.deploy(FUNCTIONS / "platform" / "buckets.py", "touch")
    assert deployed["revision"] == "touch-00001" and deployed["status"] == "ready"
    service = knative.service("touch")
    env = pod_env(knative.cluster, service)
    assert env["LEPTON_URL"] == knative.platform.url and env["LEPTON_TOKEN"].startswith("rev.touch-00001.")
    assert not any(k.startswith(("AWS_", "LEPTON_S3")) for k in env), "no S3 credentials in a pod"
    secret = knative.cluster.get("secrets", NS, "lepton-fn-touch")
    assert secret["metadata"]["labels"]["lepton.dev/function"] == "touch"
    assert PLATFORM_USER.rsplit(":", 1)[1] not in str(env)

    knative.pod("touch")
    with knative.platform.http() as http:
        answer = http.post("/fn/touch", json={"bucket": "allowed"})
        assert answer.json() == {"status": 200, "body": "written by touch-00001"}
        assert http.post("/fn/touch", json={"bucket": "elsewhere"}).json()["status"] == 403
        assert http.get("/v1/buckets/allowed/objects/from-function.txt").content == b"written by touch-00001"
        # The pod's token reads its own function's artifact and nothing under /v1 beyond it.
        pod_token = {"Authorization": f"Bearer {env['LEPTON_TOKEN']}"}
        assert httpx.get(f"{knative.platform.url}/v1/functions", headers=pod_token).status_code == 403
        assert httpx.get(f"{knative.platform.url}/v1/artifacts/sha256:{'0' * 64}", headers=pod_token).status_code == 403


def test_a_failed_revision_never_takes_traffic_and_rollback_pins_an_older_one(knative, tmp_path):
    knative.address("hello")
    (v1,) = knative.platform.deploy(HELLO)
    first = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    knative.pod("hello")
    knative.cluster.fail["hello"] = "Container failed with: exec format error"
    v2 = source(tmp_path, "v2", HELLO.read_text().replace("Hello,", "Hi,"))
    with knative.platform.http() as http:
        with pytest.raises(lepton.InvocationError) as failed:
            knative.platform.deploy(v2)
        assert failed.value.status_code == 422
        assert "failed on Knative; the previous revision keeps serving" in str(failed.value)
        assert 'Service hello is not ready: RevisionFailed: Revision "hello-' in str(failed.value)
        assert "failed with message: Container failed with: exec format error." in str(failed.value)
        svc = knative.service("hello")
        assert svc["spec"]["traffic"] == [{"revisionName": first, "percent": 100}], "traffic stayed on the old revision"
        assert svc["status"]["traffic"][0]["revisionName"] == first
        assert http.post("/fn/hello", json={"name": "still"}).json() == {"greeting": "Hello, still."}
        assert [r["status"] for r in http.get("/v1/functions/hello/revisions").json()] == ["ready", "failed"]

        # After a restart the platform still routes to status.url: the Service is Ready=False,
        # but Knative serves its previous revision there.
        knative.restart()
        assert http.post("/fn/hello", json={"name": "again"}).json() == {"greeting": "Hello, again."}

        del knative.cluster.fail["hello"]
        (v3,) = knative.platform.deploy(source(tmp_path, "v3", HELLO.read_text().replace("Hello,", "Hey,")))
        third = knative.service("hello")["spec"]["template"]["metadata"]["name"]
        assert v3["revision"] == "hello-00003" and knative.service("hello")["spec"]["traffic"] == [{"revisionName": third, "percent": 100}]
        revisions = set(knative.cluster.of("revisions", NS))
        assert http.post("/v1/functions/hello/rollback", json={"revision": "hello-00001"}).json()["revision"] == "hello-00001"
        svc = knative.service("hello")
        assert svc["spec"]["traffic"] == [{"revisionName": first, "percent": 100}]
        assert svc["spec"]["template"]["metadata"]["name"] == third, "a rollback creates no revision"
        assert set(knative.cluster.of("revisions", NS)) == revisions
        assert http.get("/v1/functions/hello").json()["knative_revision"] == first
        assert knative.serving("hello")["LEPTON_TOKEN"].startswith("rev.hello-00001."), "its pods find their token again"
        # And a deploy after the rollback starts from the revision that serves.
        (v4,) = knative.platform.deploy(source(tmp_path, "v4", HELLO.read_text().replace("Hello,", "Howdy,")))
        serving = knative.serving("hello")
        assert v4["revision"] == "hello-00004" and serving["LEPTON_TOKEN"].startswith("rev.hello-00004.")
        assert serving["revision"] == knative.service("hello")["spec"]["template"]["metadata"]["name"]


def test_redeploys_with_a_new_image_pass_knatives_name_check(knative):
    knative.platform.deploy(HELLO)
    first = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    artifact = lepton.package(HELLO, load_functions(str(HELLO)))
    with knative.platform.client() as api:
        answer = api.request(
            "POST", "/v1/functions", json={"artifact": artifact.digest, "function": "hello", "image": "registry.example/hello:2"}
        ).json()
    assert answer["revision"] == "hello-00002" and answer["changed"]
    template = knative.service("hello")["spec"]["template"]
    assert template["metadata"]["name"] != first and template["spec"]["containers"][0]["image"] == "registry.example/hello:2"


def test_a_new_revision_prunes_the_triggers_and_schedules_it_dropped(knative, tmp_path):
    code = (
        "import lepton\n\n@lepton.function(triggers=[lepton.on_event('com.example.order'), lepton.on_cron('0 3 * * *', data={'k': 1})])\n"
        "def worker(event: lepton.CloudEvent) -> None:\n    return None\n"
    )
    knative.platform.deploy(source(tmp_path, "v1", code))
    assert len(knative.cluster.of("triggers", NS)) == 1 and len(knative.cluster.of("pingsources", NS)) == 1
    knative.platform.deploy(source(tmp_path, "v2", code.replace(", lepton.on_cron('0 3 * * *', data={'k': 1})", "")))
    assert len(knative.cluster.of("triggers", NS)) == 1 and knative.cluster.of("pingsources", NS) == {}, "a deleted on_cron stops firing"
    knative.platform.deploy(
        source(
            tmp_path, "v3", code.replace("triggers=[lepton.on_event('com.example.order'), lepton.on_cron('0 3 * * *', data={'k': 1})]", "")
        )
    )
    assert knative.cluster.of("triggers", NS) == {} and knative.cluster.of("pingsources", NS) == {}
    with knative.platform.http() as http:
        assert http.post("/v1/functions/worker/rollback", json={"revision": "worker-00001"}).status_code == 200
    assert len(knative.cluster.of("triggers", NS)) == 1 and len(knative.cluster.of("pingsources", NS)) == 1, "a rollback brings them back"


def test_ls_info_and_logs_come_from_the_cluster(knative):
    knative.platform.deploy(HELLO)
    revision = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    knative.cluster.scale(revision, 2)
    knative.cluster.add_pod(revision, f"{revision}-deployment-a-1", log="loading model\nready\n")
    knative.cluster.add_pod(revision, f"{revision}-deployment-b-2", log="<b>served</b> 7\n", ready=False)
    knative.cluster.add_pod(revision, f"{revision}-deployment-c-3", waiting=True)  # its log answers 400 for now
    info = knative.platform.info("hello")
    assert (info["backend"], info["replicas"], info["desired"], info["ready"]) == ("knative", 2, 2, 1)
    assert [(p["id"], p["state"]) for p in info["replica_details"]] == [
        (f"{revision}-deployment-a-1", "Running"),
        (f"{revision}-deployment-b-2", "Running"),
        (f"{revision}-deployment-c-3", "Pending"),
    ]
    env = {"LEPTON_URL": knative.platform.url, "LEPTON_TOKEN": knative.platform.token}
    listed = lepton_cli("ls", env=env)
    assert listed.returncode == 0 and "1/2" in listed.stdout
    shown = lepton_cli("info", "hello", env=env)
    assert f"pod:       {revision}-deployment-b-2  Running  not ready  revision {revision}" in shown.stdout
    # Pods' lines merged by the API's time, as `TIME POD - TEXT`; --tail counts lines of all pods.
    logs = lepton_cli("logs", "hello", env=env)
    assert logs.returncode == 0, logs.stderr
    lines = [line.split(" ", 1) for line in logs.stdout.splitlines()]
    assert [text for _, text in lines] == [
        f"{revision}-deployment-a-1 - loading model",
        f"{revision}-deployment-a-1 - ready",
        f"{revision}-deployment-b-2 - <b>served</b> 7",
    ]
    assert [when for when, _ in lines] == sorted(when for when, _ in lines) and all(len(when) == 24 for when, _ in lines)
    knative.cluster.pod_log_times[(NS, f"{revision}-deployment-a-1", "function")][0] -= 7200  # "loading model", two hours ago
    recent = lepton_cli("logs", "hello", "--since", "1h", env=env).stdout
    assert "loading model" not in recent and "ready" in recent and "served" in recent
    assert lepton_cli("logs", "hello", "--tail", "1", env=env).stdout.endswith(f" {revision}-deployment-b-2 - <b>served</b> 7\n")
    only = lepton_cli("logs", "hello", "--replica", f"{revision}-deployment-a", env=env).stdout.splitlines()
    assert [line.split(" ", 1)[1] for line in only] == [f"{revision}-deployment-a-1 - loading model", f"{revision}-deployment-a-1 - ready"]
    missing = lepton_cli("logs", "hello", "--replica", "nope", env=env)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr and "no pod 'nope'" in missing.stderr


def test_remove_deletes_every_object_and_events_go_to_the_broker(knative, tmp_path):
    code = "import lepton\n\n@lepton.function(triggers=[lepton.on_cron('*/5 * * * *')])\ndef ticker(event: lepton.CloudEvent) -> None:\n    return None\n"
    # A labelled Secret the function no longer uses (say, from an older Lepton) goes at the next apply.
    knative.cluster.objects[("secrets", NS, "lepton-ticker")] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": {},
        "metadata": {
            "name": "lepton-ticker",
            "namespace": NS,
            "labels": {"lepton.dev/function": "ticker", "app.kubernetes.io/managed-by": "lepton"},
        },
    }
    # A user's own Secret with the function's label, not managed by Lepton, is never touched.
    knative.cluster.objects[("secrets", NS, "ticker-keys")] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "data": {},
        "metadata": {"name": "ticker-keys", "namespace": NS, "labels": {"lepton.dev/function": "ticker"}},
    }
    knative.platform.deploy(source(tmp_path, "ticker", code))
    assert set(knative.cluster.of("secrets", NS)) == {"lepton-fn-ticker", "ticker-keys"}
    with knative.platform.http() as http:
        assert (
            http.post(
                "/v1/events", json={"specversion": "1.0", "id": "k-1", "source": "/t", "type": "com.example"}, headers=STRUCTURED
            ).status_code
            == 202
        )
        forwarded = wait_for(lambda: [e for e in knative.cluster.broker_events if e["id"] == "k-1"], message="event reached the Broker")
        assert forwarded[0]["type"] == "com.example"
        assert http.delete("/v1/functions/ticker").status_code == 200
        assert http.get("/v1/functions").json() == []
    for plural in ("services", "revisions", "pingsources", "triggers"):
        assert knative.cluster.of(plural, NS) == {}, plural
    assert set(knative.cluster.of("secrets", NS)) == {"ticker-keys"}, "only what Lepton made is removed"


def test_a_secret_is_a_kubernetes_secret_of_its_own_that_services_refer_to(knative, tmp_path):
    value, changed = "s3cr3t-" + uuid.uuid4().hex, "s3cr3t-" + uuid.uuid4().hex
    code = (
        "import os\nimport lepton\n\n@lepton.function(secrets=['HF_TOKEN'])\ndef reader() -> bool:\n    return 'HF_TOKEN' in os.environ\n"
    )
    with knative.platform.http() as http:
        with pytest.raises(lepton.InvocationError) as refused:
            knative.platform.deploy(source(tmp_path, "reader", code))
        assert refused.value.status_code == 422 and "declares secret HF_TOKEN, which is not set" in str(refused.value)
        assert knative.cluster.of("services", NS) == {}, "nothing applied"

        assert http.put("/v1/secrets/HF_TOKEN", json={"value": value}).json() == {"name": "HF_TOKEN", "changed": True, "replaced": []}
        stored = knative.cluster.get("secrets", NS, "lepton-secret-hf-token")
        assert stored["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "lepton", "lepton.dev/secret": "hf-token"}
        assert base64.b64decode(stored["data"]["HF_TOKEN"]).decode() == value
        knative.platform.deploy(source(tmp_path, "reader", code))
        (container,) = knative.service("reader")["spec"]["template"]["spec"]["containers"]
        assert {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "lepton-secret-hf-token", "key": "HF_TOKEN"}}} in container[
            "env"
        ]
        assert pod_env(knative.cluster, knative.service("reader"))["HF_TOKEN"] == value
        assert http.put("/v1/secrets/HF_TOKEN", json={"value": changed}).json()["changed"] is True
        assert knative.serving("reader")["HF_TOKEN"] == changed, "a pod started from now on reads the new value"

        # A Secret of that name that Lepton does not manage is neither overwritten nor deleted.
        theirs = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "data": {"OTHER": "eA=="},
            "metadata": {"name": "lepton-secret-other", "namespace": NS, "labels": {"team": "ml"}},
        }
        knative.cluster.objects[("secrets", NS, "lepton-secret-other")] = theirs
        clash = http.put("/v1/secrets/OTHER", json={"value": "mine"})
        assert clash.status_code == 409 and "Secret lepton-secret-other already exists" in clash.json()["detail"]
        assert knative.cluster.get("secrets", NS, "lepton-secret-other") == theirs and http.get("/v1/secrets/OTHER").status_code == 404

        assert http.delete("/v1/secrets/HF_TOKEN").status_code == 409, "reader declares it"
        assert http.delete("/v1/functions/reader").status_code == 200
        assert "lepton-secret-hf-token" in knative.cluster.of("secrets", NS), "removing a function leaves the secrets it used"
        assert http.delete("/v1/secrets/HF_TOKEN").json() == {"name": "HF_TOKEN", "removed": True, "used_by": []}
        assert set(knative.cluster.of("secrets", NS)) == {"lepton-secret-other"}
    for secret_value in (value, changed):
        assert secret_value not in (tmp_path / "platform.log").read_text()


def test_what_the_runtime_image_lacks_is_refused_with_the_way_out(knative):
    with pytest.raises(lepton.InvocationError) as refused:
        knative.platform.deploy(FUNCTIONS / "platform" / "needs_package.py", "needy")
    assert refused.value.status_code == 422
    assert str(refused.value.detail) == (
        "function 'needy': requirement 'definitely-not-installed-pkg>=1' is not in the runtime image "
        "ghcr.io/lepton-dev/lepton-runtime:0.1.0; run `lepton build FILE --tag IMAGE` and deploy with --image IMAGE"
    )
    assert knative.cluster.of("services", NS) == {}, "nothing applied"


def test_webhook_denials_and_hand_edits(knative, tmp_path):
    knative.cluster.reject["hello"] = ("spec.template.spec.containers[0].image", "image must be pinned by digest")
    with pytest.raises(lepton.InvocationError) as denied:
        knative.platform.deploy(HELLO)
    assert "Service hello: spec.template.spec.containers[0].image: image must be pinned by digest" in str(denied.value.detail)
    assert "\n" not in str(denied.value.detail)
    del knative.cluster.reject["hello"]
    knative.platform.deploy(HELLO)
    # Someone pins the traffic by hand; the next deploy takes the field back (apply with force).
    first = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    knative.cluster.edit_as("kubectl-edit", "services", NS, "hello", {"spec": {"traffic": [{"latestRevision": True, "percent": 100}]}})
    assert "kubectl-edit" in knative.cluster.managers("services", NS, "hello")
    knative.platform.deploy(source(tmp_path, "v2", HELLO.read_text().replace("Hello,", "Hi,")))
    svc = knative.service("hello")
    assert svc["spec"]["traffic"] == [{"revisionName": svc["spec"]["template"]["metadata"]["name"], "percent": 100}]
    assert svc["spec"]["template"]["metadata"]["name"] != first


def test_the_cli_deploys_through_the_platform_and_checks_its_backend(knative):
    env = {"LEPTON_URL": knative.platform.url, "LEPTON_TOKEN": knative.platform.token}
    deployed = lepton_cli("deploy", str(HELLO), "--target", "knative", env=env)
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith("hello  hello-00001  ready  ")
    wrong = lepton_cli("deploy", str(HELLO), env=env)
    assert wrong.returncode == 1
    assert (
        wrong.stderr.strip()
        == f"error: the platform at {knative.platform.url} runs the knative backend, not embedded; use --target knative"
    )


def test_a_file_is_checked_whole_before_anything_is_applied(knative, tmp_path):
    code = (
        "import lepton\n\n@lepton.function()\ndef first() -> int:\n    return 1\n\n"
        "@lepton.function(triggers=[lepton.on_event('t', delivery=lepton.Delivery(delay=0.05))])\n"
        "def second(event: lepton.CloudEvent) -> None:\n    return None\n"
    )
    env = {"LEPTON_URL": knative.platform.url, "LEPTON_TOKEN": knative.platform.token}
    result = lepton_cli("deploy", str(source(tmp_path, "two", code)), "--target", "knative", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "error: HTTP 422 from /v1/functions: function 'second' cannot run on Knative: "
        "function 'second': triggers[0] delivery.delay: 0.05 s cannot be said to Knative"
    )
    assert knative.cluster.of("services", NS) == {} and knative.cluster.of("secrets", NS) == {}, "nothing applied"


def test_rollback_right_after_a_failed_deploy(knative, tmp_path):
    knative.platform.deploy(HELLO)
    first = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    knative.platform.deploy(source(tmp_path, "v2", HELLO.read_text().replace("Hello,", "Hi,")))
    knative.cluster.fail["hello"] = "Container failed with: exec format error"
    with pytest.raises(lepton.InvocationError):
        knative.platform.deploy(source(tmp_path, "v3", HELLO.read_text().replace("Hello,", "Hey,")))
    assert knative.serving("hello")["LEPTON_TOKEN"].startswith("rev.hello-00002."), "the serving revision keeps its token"
    with knative.platform.http() as http:
        # The Service stays Ready=False (its newest template failed): the rollback waits for
        # the route, not for Ready.
        assert http.post("/v1/functions/hello/rollback", json={"revision": "hello-00001"}).json()["revision"] == "hello-00001"
        assert http.get("/v1/functions/hello").json()["knative_revision"] == first
    serving = knative.serving("hello")
    assert serving["revision"] == first and serving["LEPTON_TOKEN"].startswith("rev.hello-00001.")


def test_a_failed_revision_can_be_retried_unchanged(knative):
    knative.cluster.fail["hello"] = "ImagePullBackOff: the image is not pushed yet"
    with pytest.raises(lepton.InvocationError):
        knative.platform.deploy(HELLO)
    failed = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    del knative.cluster.fail["hello"]  # the image is pushed now; the same code is deployed again
    (again,) = knative.platform.deploy(HELLO)
    assert again["revision"] == "hello-00002" and again["status"] == "ready"
    assert knative.serving("hello")["revision"] != failed


def test_a_new_default_image_leaves_the_serving_revision_its_token(knative, tmp_path):
    knative.platform.deploy(HELLO)
    first = knative.serving("hello")
    knative.restart(LEPTON_KNATIVE_IMAGE="registry.example/lepton-runtime:0.2.0")
    knative.cluster.fail["hello"] = "Container failed with: exec format error"
    with pytest.raises(lepton.InvocationError):
        knative.platform.deploy(source(tmp_path, "v2", HELLO.read_text().replace("Hello,", "Hi,")))
    assert knative.serving("hello") == first, "a pod of the serving revision still starts with its own token"


def test_logs_follow_new_lines(knative):
    knative.platform.deploy(HELLO)
    revision = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    pod = f"{revision}-deployment-a-1"
    knative.cluster.add_pod(revision, pod, log="first\n")
    with httpx.stream(
        "GET",
        f"{knative.platform.url}/v1/functions/hello/logs",
        params={"follow": "true", "tail": 10},
        headers={"Authorization": f"Bearer {knative.platform.token}"},
        timeout=30,
    ) as response:
        lines = response.iter_lines()
        assert next(lines).endswith(f"Z {pod} - first")
        knative.cluster.pod_logs[(NS, pod, "function")] = "first\nsecond\n"
        assert next(lines).endswith(f"Z {pod} - second")


def test_an_asgi_app_its_websockets_and_jobs_reach_the_service(knative):
    """The same request path on Knative: HTTP and WebSockets go on to the Service's URL, and a
    job runs against it."""
    from websockets.sync.client import connect

    knative.address("chat")
    knative.platform.deploy(FUNCTIONS / "platform" / "web.py", "chat")
    knative.pod("chat")
    auth = {"Authorization": f"Bearer {knative.platform.token}"}
    with knative.platform.http() as http:
        assert http.get("/fn/chat/").json() == {"app": "chat"}
        job = http.get("/fn/chat/", headers={"Prefer": "respond-async"})
        assert job.status_code == 202
        done = http.get(job.headers["location"], params={"wait": 30}).json()
        assert done["state"] == "succeeded" and done["result"] == {"app": "chat"}
    # HTTP/1.1 to a Knative function goes by uvicorn's protocol and the ASGI request path.
    with connect(knative.platform.url.replace("http://", "ws://") + "/fn/chat/ws", additional_headers=auth) as socket:
        socket.send("over knative")
        assert socket.recv(timeout=10) == "echo: over knative"


def test_traffic_split_and_tags_become_the_services_spec_traffic(knative, tmp_path):
    knative.address("hello")
    knative.platform.deploy(HELLO)
    first = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    knative.pod("hello")
    knative.platform.deploy(source(tmp_path, "v2", HELLO.read_text().replace("Hello,", "Hi,")))
    second = knative.service("hello")["spec"]["template"]["metadata"]["name"]
    with knative.platform.http() as http:
        moved = http.put(
            "/v1/functions/hello/traffic",
            json={"split": {"hello-00001": 90, "hello-00002": 10}, "tags": {"canary": "hello-00002", "stable": "hello-00001"}},
        )
        assert moved.status_code == 200, moved.text
        svc = knative.service("hello")
        assert svc["spec"]["traffic"] == [
            {"revisionName": first, "percent": 90, "tag": "stable"},
            {"revisionName": second, "percent": 10, "tag": "canary"},
        ]
        assert svc["spec"]["template"]["metadata"]["name"] == second, "moving traffic creates no revision"
        assert sorted((t["revisionName"], t["percent"], t.get("tag")) for t in svc["status"]["traffic"]) == sorted(
            [(first, 90, "stable"), (second, 10, "canary")]
        )
        assert {r["id"]: (r["percent"], r["tags"]) for r in http.get("/v1/functions/hello/revisions").json()} == {
            "hello-00001": (90, ["stable"]),
            "hello-00002": (10, ["canary"]),
        }
        secret = knative.cluster.get("secrets", NS, "lepton-fn-hello")
        assert {"token-hello-00001", "token-hello-00002"} <= set(secret["data"]), "both revisions' pods find their token"
        # Untagged calls go to the Service, whose route picks the revision.
        assert http.post("/fn/hello", json={"name": "split"}).status_code == 200

        refused = http.put("/v1/functions/hello/traffic", json={"split": {"hello-00001": 50}})
        assert refused.status_code == 422 and knative.service("hello")["spec"]["traffic"] == svc["spec"]["traffic"]

        # A deploy starts its Revision beside the split and its tags: one that fails leaves them as they were.
        knative.cluster.fail["hello"] = "Container failed with: exec format error"
        with pytest.raises(lepton.InvocationError):
            knative.platform.deploy(source(tmp_path, "v3", HELLO.read_text().replace("Hello,", "Hey,")))
        del knative.cluster.fail["hello"]
        assert knative.service("hello")["spec"]["traffic"] == svc["spec"]["traffic"]
        assert http.get("/v1/functions/hello/traffic").json()["tags"] == {"canary": "hello-00002", "stable": "hello-00001"}

        # Kept across a restart; a rollback pins one revision and keeps the tags at 0%.
        knative.restart()
        assert http.get("/v1/functions/hello/traffic").json()["split"] == {"hello-00001": 90, "hello-00002": 10}
        assert http.post("/v1/functions/hello/rollback", json={"revision": "hello-00001"}).status_code == 200
        assert knative.service("hello")["spec"]["traffic"] == [
            {"revisionName": first, "percent": 100, "tag": "stable"},
            {"revisionName": second, "percent": 0, "tag": "canary"},
        ]
