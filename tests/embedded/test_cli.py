"""The platform CLI end to end, as a user types it: one subprocess per command."""

from __future__ import annotations

import json

import httpx

from tests.test_cli_run import lepton_cli


def test_cli_drives_the_platform(platform, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(platform.home))  # token from $LEPTON_HOME/token
    monkeypatch.setenv("LEPTON_URL", platform.url)
    source = platform.source("app.py")

    deployed = lepton_cli("deploy", str(source), "--output", "json")
    assert deployed.returncode == 0, deployed.stderr
    assert {(r["function"], r["revision"]) for r in json.loads(deployed.stdout)} == {("greet", "greet-00001"), ("work", "work-00001")}

    listed = json.loads(lepton_cli("ls", "--output", "json").stdout)
    assert [f["name"] for f in listed] == ["greet", "work"]
    assert "greet-00001" in lepton_cli("ls").stdout

    invoked = lepton_cli("invoke", "greet", '{"name": "cli"}')
    assert json.loads(invoked.stdout)["hello"] == "cli"
    bad = lepton_cli("invoke", "greet", '{"name": 3}')
    assert bad.returncode == 1 and "HTTP 422" in bad.stderr and "name: Input should be a valid string" in bad.stderr
    assert lepton_cli("invoke", "nope").stderr.startswith("error: HTTP 404")

    info = json.loads(lepton_cli("info", "work", "--output", "json").stdout)
    assert info["scale"]["max"] == 4 and info["public"] is True

    logs = lepton_cli("logs", "greet")
    assert logs.returncode == 0 and "Application startup complete" in logs.stdout

    platform.deploy(platform.source("app.py", 2), "greet")
    revisions = json.loads(lepton_cli("revisions", "greet", "--output", "json").stdout)
    assert [r["routed"] for r in revisions] == [False, True]
    assert "greet now serves greet-00001" in lepton_cli("rollback", "greet").stdout
    assert lepton_cli("rollback", "greet", "greet-00009").stderr.startswith("error: HTTP 404")

    assert lepton_cli("rm", "work").stdout.strip() == "removed work"
    assert [f["name"] for f in json.loads(lepton_cli("ls", "--output", "json").stdout)] == ["greet"]

    wrong = lepton_cli("ls", "--token", "wrong")
    assert wrong.returncode == 1 and "HTTP 403" in wrong.stderr and "Traceback" not in wrong.stderr


def test_cli_says_when_the_platform_is_down(tmp_path):
    from tests.helpers import free_port

    result = lepton_cli("ls", "--platform", f"http://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "is the platform up" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_cli_manages_buckets(platform, monkeypatch, tmp_path):
    monkeypatch.setenv("LEPTON_HOME", str(platform.home))
    monkeypatch.setenv("LEPTON_URL", platform.url)
    data = tmp_path / "weights.bin"
    data.write_bytes(bytes(range(256)) * 40_000)

    assert lepton_cli("bucket", "create", "models").stdout.strip() == "created bucket models"
    assert lepton_cli("bucket", "create", "models").stdout.strip() == "bucket models already exists"
    put = lepton_cli("bucket", "put", "models", "v1/weights.bin", str(data), "--output", "json")
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["size"] == 10_240_000
    listed = json.loads(lepton_cli("bucket", "ls", "models", "--prefix", "v1/", "--output", "json").stdout)
    assert [o["key"] for o in listed] == ["v1/weights.bin"]
    assert "models" in lepton_cli("bucket", "ls").stdout

    out = tmp_path / "copy.bin"
    got = lepton_cli("bucket", "get", "models", "v1/weights.bin", "-o", str(out))
    assert got.returncode == 0, got.stderr
    assert out.read_bytes() == data.read_bytes()

    url = lepton_cli("bucket", "url", "models", "v1/weights.bin", "--expires", "60").stdout.strip()
    assert httpx.get(url).content == data.read_bytes()

    refused = lepton_cli("bucket", "rm", "models")
    assert refused.returncode == 1 and "not empty" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    bad = lepton_cli("bucket", "put", "models", "../escape", str(data))
    assert bad.returncode == 2 and "'..' segment" in bad.stderr and "Traceback" not in bad.stderr
    assert lepton_cli("bucket", "rm", "models", "v1/weights.bin").stdout.strip() == "removed models/v1/weights.bin"
    assert lepton_cli("bucket", "rm", "models").stdout.strip() == "removed bucket models"
    assert "HTTP 404" in lepton_cli("bucket", "get", "models", "nope").stderr


def test_up_refuses_a_home_or_port_already_taken(platform, tmp_path):
    """A second platform on the same state would run a second broker and autoscaler over it;
    one on a port in use used to start everything, then fail to bind."""
    port = platform.url.rsplit(":", 1)[1]
    pid = platform.process.proc.pid
    same_home = lepton_cli("up", "--port", "1", env={"LEPTON_HOME": str(platform.home)})
    assert same_home.returncode == 1, same_home.stderr
    assert same_home.stderr.strip().splitlines() == [
        f"error: another platform (pid {pid}) is running on {platform.home}; stop it, or give this one its own LEPTON_HOME"
    ]
    same_port = lepton_cli("up", "--port", port, env={"LEPTON_HOME": str(tmp_path / "other")})
    assert same_port.returncode == 1
    assert same_port.stderr.strip().splitlines() == [
        f"error: port {port} is in use on 127.0.0.1; stop what holds it or pick another with --port"
    ]
    assert not (tmp_path / "other" / "state.db").exists(), "nothing started before the port was known to be free"
    assert httpx.get(f"{platform.url}/healthz").json()["status"] == "ok"
