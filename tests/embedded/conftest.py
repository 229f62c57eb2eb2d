from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import lepton
from lepton.loader import load_functions
from tests.helpers import FUNCTIONS, Process, free_port, start_process


@dataclass
class PlatformProcess:
    process: Process
    home: Path
    workdir: Path

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def token(self) -> str:
        return (self.home / "token").read_text().strip()

    def client(self) -> lepton.Client:
        return lepton.Client(self.url, self.token)

    def http(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, **{"timeout": 30, **kwargs})

    def source(self, name: str, version: int = 1) -> Path:
        """A private copy of tests/functions/platform/NAME with VERSION set."""
        folder = self.workdir / f"v{version}"
        folder.mkdir(parents=True, exist_ok=True)
        text = (FUNCTIONS / "platform" / name).read_text().replace("VERSION = 1", f"VERSION = {version}")
        path = folder / name
        path.write_text(text)
        return path

    def deploy(self, path: Path, name: str | None = None, *, functions: dict | None = None) -> list[dict]:
        functions = functions or load_functions(f"{path}:{name}" if name else str(path))
        artifact = lepton.package(path, functions)
        with self.client() as api:
            api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
            return [
                api.request("POST", "/v1/functions", json={"artifact": artifact.digest, "function": fn}).json() for fn in sorted(functions)
            ]

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        """`lepton ARGS` against this platform (its URL and token in the environment)."""
        env = {**os.environ, "LEPTON_URL": self.url, "LEPTON_TOKEN": self.token}
        return subprocess.run([sys.executable, "-m", "lepton.cli", *args], capture_output=True, text=True, timeout=120, env=env)

    def info(self, name: str) -> dict:
        with self.client() as api:
            return api.request("GET", f"/v1/functions/{name}").json()


def start_platform(home: Path, log: Path, port: int | None = None, env: dict[str, str] | None = None, fork: bool = True) -> Process:
    """`lepton up` on a free port. Its template process preloads no torch unless `env` sets
    LEPTON_PRELOAD (test_ai_functions does): no other test function needs it, and importing it
    would hold up each test platform's first replica by about 3 s."""
    port = port or free_port()
    return start_process(
        ["-m", "lepton.cli", "up", "--port", str(port), *([] if fork else ["--no-fork"])],
        log,
        f"http://127.0.0.1:{port}",
        env={"LEPTON_HOME": str(home), "LEPTON_PRELOAD": "none", **(env or {})},
    )


def deployed_platform(
    tmp_path_factory: pytest.TempPathFactory, name: str, source: Path, env: dict[str, str] | None = None
) -> Iterator[PlatformProcess]:
    """A platform with every function of `source` deployed, for a module's tests to share
    (`yield from` it in a module-scoped fixture); stopped even if the deploy fails."""
    tmp_path = tmp_path_factory.mktemp(name)
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env=env), home, tmp_path)
    try:
        running.deploy(source)
        yield running
    finally:
        running.process.stop(signal.SIGTERM)


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[PlatformProcess]:
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log"), home, tmp_path / "src")
    yield running
    running.process.stop(signal.SIGTERM)
    shutil.rmtree(tmp_path / "src", ignore_errors=True)
