"""`make demo` (SDK stage): serve examples/hello.py with `lepton run`, call it, stop it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

import lepton

HERE = Path(__file__).resolve().parent


def main() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "lepton.cli", "run", str(HERE / "hello.py"), "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
            if server.poll() is not None:
                print("demo: the server exited early", file=sys.stderr)
                return 1
        print(f"ready in {(time.perf_counter() - started) * 1000:.0f} ms at {url}")
        with lepton.Client(url) as client:
            result = client.call("/", {"name": "Ada", "excited": True})
        print(f"POST / {{'name': 'Ada', 'excited': true}} -> {result}")
        return 0 if result == {"greeting": "Hello, Ada!"} else 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
