"""The runtime image's entrypoint as a pod runs it: a baked artifact, a refused token, a
platform that is still starting, and a SIGTERM in the middle of a download. (The fetch from
a real platform with a real scoped token is in test_platform_backend.py.)"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from lepton.artifacts import package
from tests.helpers import ROOT, free_port, start_process

HELLO = ROOT / "examples" / "hello.py"


def entrypoint_env(tmp_path: Path, digest: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "LEPTON_FUNCTION": "hello",
        "LEPTON_ARTIFACT_DIGEST": digest,
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "LEPTON_ARTIFACT_DIR": str(tmp_path / "baked"),
        "LEPTON_HOME": str(tmp_path / "home"),
        **extra,
    }


def test_a_baked_artifact_needs_no_platform(tmp_path):
    artifact = package(HELLO)
    (tmp_path / "baked").mkdir()
    (tmp_path / "baked" / f"{artifact.digest.removeprefix('sha256:')}.tar.gz").write_bytes(artifact.data)
    port = free_port()
    served = start_process(
        ["-m", "lepton_knative.entrypoint"],
        tmp_path / "pod.log",
        f"http://127.0.0.1:{port}",
        env=entrypoint_env(tmp_path, artifact.digest, port),
        ready_path="/readyz",
    )
    try:
        assert httpx.post(served.url, json={"name": "image"}).json() == {"greeting": "Hello, image."}
    finally:
        served.stop()


class Refusing(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"detail":"invalid scoped token"}'
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_refused_token_is_one_line_and_final(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = entrypoint_env(
            tmp_path, "sha256:" + "1" * 64, free_port(), LEPTON_URL=f"http://127.0.0.1:{server.server_port}", LEPTON_TOKEN="rev.x.y"
        )
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "lepton_knative.entrypoint"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 1 and time.monotonic() - started < 20, "a 4xx is not retried"
    assert result.stderr.strip() == ('error: the platform refused artifact sha256:111111111111...: 403 {"detail":"invalid scoped token"}')


def test_no_artifact_and_no_platform_settings(tmp_path):
    env = entrypoint_env(tmp_path, "sha256:" + "2" * 64, free_port())
    result = subprocess.run(
        [sys.executable, "-m", "lepton_knative.entrypoint"], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == "error: artifact sha256:222222222222... is not in the image; set LEPTON_URL, LEPTON_TOKEN to fetch it from the platform"
    )


def test_sigterm_mid_download_stops_the_pod_at_once(tmp_path):
    # A "platform" that accepts the connection and never answers: the download hangs, as a
    # large artifact on a slow network would. PID 1 must still stop at once on SIGTERM.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    env = entrypoint_env(
        tmp_path, "sha256:" + "3" * 64, free_port(), LEPTON_URL=f"http://127.0.0.1:{listener.getsockname()[1]}", LEPTON_TOKEN="rev.x.y"
    )
    process = subprocess.Popen([sys.executable, "-m", "lepton_knative.entrypoint"], env=env, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        listener.settimeout(30)
        connection, _ = listener.accept()  # the download has started
        with connection:
            process.send_signal(signal.SIGTERM)
            assert process.wait(5) == 128 + signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
        listener.close()
    shutil.rmtree(tmp_path / "home", ignore_errors=True)


def test_keeps_trying_while_the_platform_starts(tmp_path):
    artifact = package(HELLO)

    class Serving(Refusing):
        def do_GET(self) -> None:
            assert self.path == f"/v1/artifacts/{artifact.digest}" and self.headers["Authorization"] == "Bearer rev.hello.t"
            self.send_response(200)
            self.send_header("Content-Length", str(len(artifact.data)))
            self.end_headers()
            self.wfile.write(artifact.data)

    platform_port, port = free_port(), free_port()
    env = entrypoint_env(tmp_path, artifact.digest, port, LEPTON_URL=f"http://127.0.0.1:{platform_port}", LEPTON_TOKEN="rev.hello.t")
    pod = start_process(["-m", "lepton_knative.entrypoint"], tmp_path / "pod.log", f"http://127.0.0.1:{port}", env=env, ready_path=None)
    server = None
    try:
        time.sleep(1.0)  # connection refused meanwhile: the pod must keep trying
        assert pod.proc.poll() is None, pod.output()
        server = ThreadingHTTPServer(("127.0.0.1", platform_port), Serving)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{pod.url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.post(pod.url, json={"name": "later"}).json() == {"greeting": "Hello, later."}
    finally:
        pod.stop()
        if server is not None:
            server.shutdown()
            server.server_close()
