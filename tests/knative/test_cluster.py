"""`lepton deploy --target knative` and `lepton render` end to end against a fake Kubernetes
API (tests/knative/fake_api.py) and a moto S3 for the artifacts bucket; the runtime image's
entrypoint against the same S3."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import boto3
import httpx
import pytest
import yaml

from lepton.packaging import package
from lepton_knative.cluster import Cluster, ClusterError
from lepton_knative.deploy import artifact_key, upload_artifact
from tests.helpers import FUNCTIONS, free_port, start_process
from tests.knative.fake_api import FakeCluster, FakeServer
from tests.test_cli_run import lepton_cli

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello.py"
S3 = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def cluster(tmp_path: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeServer]:
    fake = FakeCluster()
    with FakeServer(fake, free_port()) as server:
        server.kubeconfig(tmp_path / "kubeconfig")
        bucket = f"artifacts-{free_port()}"
        boto3.client("s3", endpoint_url=moto_server, **{k.lower(): v for k, v in S3.items() if k != "AWS_DEFAULT_REGION"},
                     region_name="us-east-1").create_bucket(Bucket=bucket)
        for name, value in {**S3, "KUBECONFIG": str(tmp_path / "kubeconfig"), "LEPTON_S3_ENDPOINT_URL": moto_server,
                            "LEPTON_ARTIFACT_BUCKET": bucket}.items():
            monkeypatch.setenv(name, value)
        yield server


def objects(server: FakeServer, plural: str) -> dict[str, dict]:
    return {name: obj for (p, _, name), obj in server.cluster.objects.items() if p == plural}


def test_deploy_applies_waits_and_prints_urls(cluster):
    deployed = lepton_cli("deploy", str(FUNCTIONS / "platform" / "events.py"), "--target", "knative", "--output", "json")
    assert deployed.returncode == 0, deployed.stderr
    results = {r["function"]: r for r in json.loads(deployed.stdout)}
    assert results["orders"]["url"] == "http://orders.default.example.com" and results["orders"]["status"] == "ready"
    services = objects(cluster, "services")
    assert set(services) == {"orders", "flaky", "dead-letters", "replier", "pongs", "uploads", "sluggish"}
    triggers = objects(cluster, "triggers")
    assert {t["spec"]["subscriber"]["ref"]["name"] for t in triggers.values()} == {"orders", "flaky", "replier", "pongs", "uploads", "sluggish"}
    flaky = next(t for t in triggers.values() if t["spec"]["subscriber"]["ref"]["name"] == "flaky")
    assert flaky["spec"]["delivery"] == {"retry": 2, "backoffPolicy": "linear", "backoffDelay": "PT0.3S",
                                         "deadLetterSink": {"ref": {"apiVersion": "serving.knative.dev/v1", "kind": "Service", "name": "dead-letters"}}}

    digest = services["orders"]["metadata"]["annotations"]["lepton.dev/artifact"]
    s3 = boto3.client("s3", endpoint_url=os.environ["LEPTON_S3_ENDPOINT_URL"], region_name="us-east-1")
    stored = s3.get_object(Bucket=os.environ["LEPTON_ARTIFACT_BUCKET"], Key=artifact_key(digest))["Body"].read()
    assert "sha256:" + __import__("hashlib").sha256(stored).hexdigest() == digest

    generations = {n: s["metadata"]["generation"] for n, s in services.items()}
    again = lepton_cli("deploy", str(FUNCTIONS / "platform" / "events.py"), "--target", "knative", "--output", "json")
    assert again.returncode == 0, again.stderr
    assert {n: s["metadata"]["generation"] for n, s in objects(cluster, "services").items()} == generations, "re-applying is a no-op"


def test_a_failed_revision_is_one_readable_line(cluster):
    cluster.cluster.fail["hello"] = "Container failed with: ModuleNotFoundError: No module named 'torchvision'"
    result = lepton_cli("deploy", str(HELLO), "--target", "knative")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: Service hello is not ready: RevisionFailed: "
                                     "Container failed with: ModuleNotFoundError: No module named 'torchvision'")


def test_api_server_errors_name_the_object_and_field(cluster):
    cluster.cluster.reject["hello"] = ("spec.template.spec.containers[0].image", "image must be pinned by digest")
    result = lepton_cli("deploy", str(HELLO), "--target", "knative")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: Service hello: spec.template.spec.containers[0].image: image must be pinned by digest"


def test_wrong_credentials_and_no_cluster(cluster, tmp_path):
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    config["users"][0]["user"]["token"] = "wrong"
    (tmp_path / "bad").write_text(yaml.safe_dump(config))
    result = lepton_cli("deploy", str(HELLO), "--target", "knative", "--kubeconfig", str(tmp_path / "bad"))
    assert result.returncode == 1 and result.stderr.strip() == "error: Service hello: Unauthorized (HTTP 401)"
    missing = lepton_cli("deploy", str(HELLO), "--target", "knative", "--kubeconfig", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "no cluster to talk to" in missing.stderr and "Traceback" not in missing.stderr


def test_apply_wait_and_delete_in_process(cluster, tmp_path):
    from lepton.loader import load_functions
    from lepton_knative.deploy import apply_all, render_all
    from lepton_knative.manifests import Target

    source = tmp_path / "nightly.py"
    source.write_text("import lepton\n\n@lepton.function(triggers=[lepton.on_cron('0 3 * * *', timezone='Europe/Paris')])\n"
                      "def ticker(event: lepton.CloudEvent) -> None:\n    return None\n")
    functions = load_functions(str(source))
    objs = render_all(functions, Target(artifact_url="s3://b/k", digest="sha256:" + "0" * 64))
    client = Cluster(kubeconfig=os.environ["KUBECONFIG"])
    seen: list[str] = []
    results = apply_all(client, objs, progress=seen.append)
    assert results[0]["url"] == "http://ticker.default.example.com"
    assert any("waiting" in s or "Deploying" in s for s in seen)
    source = objects(cluster, "pingsources")
    assert [(s["spec"]["schedule"], s["spec"]["timezone"]) for s in source.values()] == [("0 3 * * *", "Europe/Paris")]
    gone = client.delete_function("default", "ticker")
    assert sorted(gone)[0].startswith("PingSource ") and "Service ticker" in gone
    assert not objects(cluster, "services") and not objects(cluster, "pingsources")
    with pytest.raises(ClusterError, match="not found"):
        client.get(objs[0])


def test_render_prints_valid_yaml_and_refuses_what_knative_would():
    rendered = lepton_cli("render", str(HELLO), "--namespace", "ml", "--image", "registry.example/lepton:1")
    assert rendered.returncode == 0, rendered.stderr
    docs = list(yaml.safe_load_all(rendered.stdout))
    assert [d["kind"] for d in docs] == ["Service"] and docs[0]["metadata"]["namespace"] == "ml"
    broken = lepton_cli("render", str(FUNCTIONS / "platform" / "cron.py"))
    assert broken.returncode == 2
    assert "PingSource ticker-" in broken.stderr and "is not a 5-field cron schedule" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1


def test_runtime_image_entrypoint_fetches_verifies_and_serves(moto_server, tmp_path, monkeypatch):
    for name, value in S3.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=moto_server)
    bucket = f"images-{free_port()}"
    s3.create_bucket(Bucket=bucket)
    artifact = package(HELLO)
    url = upload_artifact(artifact.data, artifact.digest, bucket, endpoint_url=moto_server)
    port = free_port()
    env = {**S3, "LEPTON_S3_ENDPOINT_URL": moto_server, "LEPTON_ARTIFACT_URL": url, "LEPTON_ARTIFACT_DIGEST": artifact.digest,
           "LEPTON_FUNCTION": "hello", "PORT": str(port), "HOST": "127.0.0.1", "LEPTON_HOME": str(tmp_path / "home")}
    served = start_process(["-m", "lepton_knative.entrypoint"], tmp_path / "entry.log", f"http://127.0.0.1:{port}", env=env, ready_path="/readyz")
    try:
        assert httpx.post(served.url, json={"name": "Knative", "excited": True}).json() == {"greeting": "Hello, Knative!"}
    finally:
        served.stop()
    bad = start_process(["-m", "lepton_knative.entrypoint"], tmp_path / "bad.log", f"http://127.0.0.1:{port}",
                        env={**env, "LEPTON_ARTIFACT_DIGEST": "sha256:" + "0" * 64}, ready_path=None)
    assert bad.proc.wait(30) != 0
    assert "digest mismatch" in bad.output() and "refusing to run it" in bad.output()
