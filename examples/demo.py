"""`make demo`: the main job on the embedded platform, end to end.

Starts `lepton up` in a temporary LEPTON_HOME, deploys examples/hello.py with the CLI, invokes
it (cold, then warm), deploys a new revision, rolls back, shows the function scaling to zero
and waking again, and stops the platform.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lepton(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "lepton.cli", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: `lepton {' '.join(args)}` failed:\n{result.stderr}")
    return result.stdout.strip()


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def call(http: httpx.Client, url: str, payload: dict) -> None:
    started = time.perf_counter()
    response = http.post(url, json=payload)
    ms = (time.perf_counter() - started) * 1000
    cold = "cold start" if response.headers.get("x-lepton-cold-start") == "1" else "warm"
    print(f"   {payload} -> {response.json()}  [{response.headers.get('x-lepton-revision')}, {cold}, {ms:.1f} ms]")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="lepton-demo-"))
    port = free_port()
    env = {**os.environ, "LEPTON_HOME": str(home), "LEPTON_URL": f"http://127.0.0.1:{port}"}
    env.pop("LEPTON_TOKEN", None)
    step(f"lepton up --port {port}   (state in {home})")
    platform = subprocess.Popen([sys.executable, "-m", "lepton.cli", "up", "--port", str(port), "--log-level", "warning"], env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()["template_process"]:
                    break
            except httpx.TransportError:
                pass
            if platform.poll() is not None or time.monotonic() > deadline:
                print("demo: the platform did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        print("   platform up; template process ready")

        work = home / "src"
        work.mkdir()
        source = work / "hello.py"
        source.write_text((HERE / "hello.py").read_text().replace("max_scale=4)", "max_scale=4, scale_down_after=2)"))
        step("lepton deploy hello.py")
        print("   " + lepton("deploy", str(source), env=env))
        url = f"http://127.0.0.1:{port}/fn/hello"
        with httpx.Client(timeout=30) as http:
            step("invoke (public function, plain HTTP)")
            call(http, url, {"name": "Ada"})
            call(http, url, {"name": "Grace", "excited": True})
            print("   lepton invoke:", lepton("invoke", "hello", '{"name": "CLI"}', env=env))

            step("deploy a new revision, then roll back")
            source.write_text(source.read_text().replace("Hello,", "Bonjour,"))
            print("   " + lepton("deploy", str(source), env=env))
            call(http, url, {"name": "Ada"})
            print("   " + lepton("rollback", "hello", env=env))
            call(http, url, {"name": "Ada"})
            print(lepton("revisions", "hello", env=env))

            step("scale to zero after 2 s without traffic, then wake on the next request")
            for _ in range(100):
                info = httpx.get(f"http://127.0.0.1:{port}/v1/functions/hello",
                                 headers={"Authorization": "Bearer " + (home / "token").read_text().strip()}).json()
                if info["replicas"] == 0:
                    break
                time.sleep(0.1)
            print(f"   replicas now: {info['replicas']}")
            call(http, url, {"name": "again"})
            print(lepton("ls", env=env))
        return 0
    finally:
        step("stopping the platform")
        platform.send_signal(signal.SIGTERM)
        platform.wait(30)
        shutil.rmtree(home, ignore_errors=True)
        print("   stopped")


if __name__ == "__main__":
    sys.exit(main())
