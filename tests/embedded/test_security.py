"""Security properties a user relies on: tokens never reach a log, functions see only their
scoped token, and the platform warns when it is exposed without TLS."""

from __future__ import annotations

import signal

import httpx

from tests.embedded.conftest import start_platform
from tests.helpers import FUNCTIONS, free_port, start_process


def test_tokens_never_reach_a_log(platform):
    platform.deploy(FUNCTIONS / "platform" / "buckets.py")
    with platform.http() as http:
        assert http.post("/fn/touch", json={"bucket": "allowed"}).json()["status"] == 200
        assert http.post("/fn/touch", json={"bucket": "other"}).json()["status"] in (403, 404)
        scoped = http.post("/fn/environment").json()["LEPTON_TOKEN"]
        url = http.post("/v1/buckets/allowed/urls", json={"key": "from-function.txt"}).json()["url"]
        assert httpx.get(url).status_code == 200
        signature = url.split("signature=")[1]
        assert http.get("/v1/functions/touch/logs").status_code == 200
    assert httpx.get(f"{platform.url}/v1/functions", headers={"Authorization": "Bearer wrong-token-value"}).status_code == 403
    logs = [platform.process.log, *(platform.home / "logs").rglob("*.log")]
    text = "\n".join(path.read_text(errors="replace") for path in logs)
    assert len(logs) >= 3
    for secret in (platform.token, scoped, signature, "wrong-token-value"):
        assert secret not in text


def test_exposed_without_tls_is_warned_about(tmp_path):
    port = free_port()
    process = start_platform(tmp_path / "home", tmp_path / "platform.log", port)
    process.stop(signal.SIGTERM)
    assert "without TLS" not in process.output()
    exposed = start_process(
        ["-m", "lepton.cli", "up", "--host", "0.0.0.0", "--port", str(port), "--no-fork"],
        tmp_path / "exposed.log",
        f"http://127.0.0.1:{port}",
        env={"LEPTON_HOME": str(tmp_path / "home")},
    )
    try:
        assert "listening on 0.0.0.0 without TLS" in exposed.output()
    finally:
        exposed.stop(signal.SIGTERM)


def test_a_scoped_token_dies_with_its_function(platform):
    """Revision ids start again at 00001 after `lepton rm`: the old function's token must not
    work for the new one."""
    path = FUNCTIONS / "platform" / "buckets.py"
    platform.deploy(path)
    with platform.http() as http:
        old = http.post("/fn/environment").json()["LEPTON_TOKEN"]
        known = httpx.get(f"{platform.url}/v1/buckets/allowed/objects", headers={"Authorization": f"Bearer {old}"})
        assert "it is not in the function's buckets" in known.json()["detail"]  # recognised, and held to its buckets
        for name in ("touch", "environment"):
            assert http.delete(f"/v1/functions/{name}").status_code in (200, 204)
        platform.deploy(path)
        new = http.post("/fn/environment").json()["LEPTON_TOKEN"]
    assert new != old and new.split(".")[1] == old.split(".")[1]  # same revision id, another incarnation
    refused = httpx.get(f"{platform.url}/v1/buckets/allowed/objects", headers={"Authorization": f"Bearer {old}"})
    assert refused.status_code == 403 and "invalid scoped token" in refused.json()["detail"]


def test_metrics_need_the_admin_token_when_not_public(tmp_path):
    process = start_platform(tmp_path / "home", tmp_path / "platform.log", env={"LEPTON_METRICS_PUBLIC": "false"}, fork=False)
    try:
        token = (tmp_path / "home" / "token").read_text().strip()
        assert httpx.get(f"{process.url}/metrics").status_code == 401
        assert httpx.get(f"{process.url}/metrics", headers={"Authorization": "Bearer not-it"}).status_code == 403
        allowed = httpx.get(f"{process.url}/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "lepton_events_accepted_total" in allowed.text
        assert httpx.get(f"{process.url}/healthz").status_code == 200, "the probe stays open"
    finally:
        process.stop(signal.SIGTERM)
