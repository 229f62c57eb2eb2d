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
        ["-m", "lepton.cli", "up", "--host", "0.0.0.0", "--port", str(port), "--no-fork"], tmp_path / "exposed.log",
        f"http://127.0.0.1:{port}", env={"LEPTON_HOME": str(tmp_path / "home")})
    try:
        assert "listening on 0.0.0.0 without TLS" in exposed.output()
    finally:
        exposed.stop(signal.SIGTERM)
