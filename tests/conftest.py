from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import FUNCTIONS, Process, free_port, start_process


@pytest.fixture(autouse=True)
def lepton_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own state folder and no ambient platform settings."""
    home = tmp_path / "lepton-home"
    monkeypatch.setenv("LEPTON_HOME", str(home))
    for var in ("LEPTON_URL", "LEPTON_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """Serve FILE:NAME (relative to tests/functions) with `python -m lepton.runtime`."""
    started: list[Process] = []

    def start(target: str, *, env: dict[str, str] | None = None, ready_path: str | None = "/healthz") -> Process:
        port = free_port()
        path = target if target.startswith("--") else str(FUNCTIONS / target)
        args = ["-m", "lepton.runtime", *path.split(" "), "--port", str(port)]
        process = start_process(args, tmp_path / f"runtime-{port}.log", f"http://127.0.0.1:{port}", env=env, ready_path=ready_path)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3 (and SNS) API on loopback: moto in server mode, shared by the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process = start_process(["-m", "moto.server", "-p", str(port)], log, f"http://127.0.0.1:{port}", ready_path="/moto-api/")
    yield process.url
    process.stop()
