"""`lepton run`: serves a file; a broken file is one clear line and a non-zero exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.helpers import FUNCTIONS, ROOT, free_port, start_process


def lepton_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lepton.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, **env} if env else None,
    )


def test_run_serves_the_named_function(tmp_path):
    port = free_port()
    proc = start_process(
        ["-m", "lepton.cli", "run", str(FUNCTIONS / "kinds/main.py:add"), "--port", str(port)],
        tmp_path / "run.log",
        f"http://127.0.0.1:{port}",
    )
    try:
        assert httpx.post(proc.url, json={"a": 40, "b": 2}).json() == 42
    finally:
        # uvicorn shuts down gracefully, then re-raises the signal so the exit status shows it.
        assert proc.stop() in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in proc.output()


@pytest.mark.parametrize(
    "target, expected",
    [
        ("broken/syntax.py", "syntax.py:5: syntax error"),
        ("broken/imports.py", "imports.py:2: ModuleNotFoundError: No module named 'package_that_does_not_exist'"),
        ("broken/empty.py", "no @lepton.function in this file (found: helper)"),
        ("broken/missing.py", "no such file"),
        ("kinds/main.py:nope", "no function 'nope'; found: add, batched-square"),
        ("kinds/main.py", "has 14 functions"),
    ],
)
def test_broken_targets_fail_with_one_line(target, expected):
    result = lepton_cli("run", str(FUNCTIONS / target), "--port", str(free_port()))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
