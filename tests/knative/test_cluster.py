"""`lepton_knative.cluster` and `deploy` in-process against the fake Kubernetes API, as the
platform's service account; and `lepton render`, which needs no cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import lepton
from lepton_knative import deploy
from lepton_knative.cluster import Cluster, ClusterError
from lepton_knative.manifests import Target
from tests.helpers import FUNCTIONS, ROOT, free_port
from tests.knative.fake_api import FakeCluster, FakeServer
from tests.test_cli_run import lepton_cli

HELLO = ROOT / "examples" / "hello.py"
TARGET = Target(namespace="lepton", digest="sha256:" + "0" * 64, platform_url="http://platform:8765")


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[tuple[FakeCluster, Cluster]]:
    cluster = FakeCluster()
    with FakeServer(cluster, free_port()) as server:
        yield cluster, Cluster(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig", as_platform=True)))


def ticker(**options):
    @lepton.function(name="ticker", **options)
    def fn(event: lepton.CloudEvent) -> None:
        return None

    return fn.spec


def test_two_steps_then_prune_then_delete(fake):
    cluster, client = fake
    first = deploy.plan(ticker(triggers=[lepton.on_cron("0 3 * * *", timezone="Europe/Paris")]), TARGET)
    seen: list[str] = []
    deploy.start(client, first, None, {"token-ticker-00001": "t1"}, timeout=10, progress=seen.append)
    assert any("waiting" in s or "Unknown" in s or "Deploying" in s for s in seen), seen
    assert cluster.of("pingsources", "lepton") == {}, "nothing routes or fires before the revision is ready"
    final = deploy.move(client, first, first.revision, {"token-ticker-00001": "t1"}, timeout=10)
    assert final["status"]["traffic"] == [{"revisionName": first.revision, "percent": 100, "latestRevision": False}] or [
        t["revisionName"] for t in final["status"]["traffic"]
    ] == [first.revision]
    assert deploy.attach(client, first, timeout=10) == []
    assert [(s["spec"]["schedule"], s["spec"]["timezone"]) for s in cluster.of("pingsources", "lepton").values()] == [
        ("0 3 * * *", "Europe/Paris")
    ]

    second = deploy.plan(ticker(triggers=[lepton.on_event("com.example")]), Target(**{**TARGET.__dict__, "revision": "ticker-00002"}))
    both = {"token-ticker-00001": "t1", "token-ticker-00002": "t2"}
    deploy.start(client, second, first.revision, both, timeout=10)
    assert cluster.get("services", "lepton", "ticker")["status"]["traffic"][0]["revisionName"] == first.revision
    assert set(cluster.get("secrets", "lepton", "lepton-fn-ticker")["data"]) == {"url", *both}
    deploy.move(client, second, second.revision, both, timeout=10)
    gone = deploy.attach(client, second, timeout=10)
    assert [g.split()[0] for g in gone] == ["PingSource"] and cluster.of("pingsources", "lepton") == {}
    assert len(cluster.of("triggers", "lepton")) == 1

    # A third revision: the Secret keeps the serving one's token and the new one's, nothing older.
    third = deploy.plan(ticker(), Target(**{**TARGET.__dict__, "revision": "ticker-00003"}))
    deploy.start(client, third, second.revision, {"token-ticker-00002": "t2", "token-ticker-00003": "t3"}, timeout=10)
    assert set(cluster.get("secrets", "lepton", "lepton-fn-ticker")["data"]) == {"url", "token-ticker-00002", "token-ticker-00003"}

    gone = client.delete_function("lepton", "ticker")
    assert sorted(g.split()[0] for g in gone) == ["Secret", "Service", "Trigger"]
    assert not cluster.of("services", "lepton") and not cluster.of("secrets", "lepton")
    with pytest.raises(ClusterError, match="not found"):
        client.get(second.service)


def test_an_unreachable_api_server_is_one_line(tmp_path):
    server = FakeServer(FakeCluster(), free_port())
    client = Cluster(kubeconfig=str(server.kubeconfig(tmp_path / "kubeconfig", as_platform=True)))  # nothing listens there
    with pytest.raises(ClusterError) as caught:
        client.find("Service", "lepton", "hello")
    assert str(caught.value).startswith("cannot reach the Kubernetes API: ") and "\n" not in str(caught.value)


def test_a_denial_is_one_line_naming_the_object_and_field(fake):
    cluster, client = fake
    planned = deploy.plan(ticker(), TARGET)
    bad = {**planned.service, "spec": {**planned.service["spec"], "template": {**planned.service["spec"]["template"]}}}
    bad["spec"]["template"]["spec"] = {**bad["spec"]["template"]["spec"], "containerConcurrency": 5000}
    with pytest.raises(ClusterError) as caught:
        client.apply(bad)
    message = str(caught.value)
    assert message.startswith("Service ticker: ") and "containerConcurrency" in message and "\n" not in message


def test_no_cluster_is_one_line_at_start(tmp_path):
    result = lepton_cli(
        "up",
        "--port",
        str(free_port()),
        env={"LEPTON_BACKEND": "knative", "KUBECONFIG": str(tmp_path / "nope"), "LEPTON_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error: no cluster to talk to: no kubeconfig and not inside a pod")
    assert "Traceback" not in result.stderr


def test_render_prints_valid_yaml_and_refuses_what_knative_would():
    rendered = lepton_cli("render", str(HELLO), "--namespace", "ml", "--image", "registry.example/lepton:1")
    assert rendered.returncode == 0, rendered.stderr
    docs = list(yaml.safe_load_all(rendered.stdout))
    assert [d["kind"] for d in docs] == ["Service"] and docs[0]["metadata"]["namespace"] == "ml"
    broken = lepton_cli("render", str(FUNCTIONS / "platform" / "cron.py"))
    assert broken.returncode == 2
    assert "PingSource ticker-" in broken.stderr and "is not a 5-field cron schedule" in broken.stderr
    assert len(broken.stderr.strip().splitlines()) == 1
