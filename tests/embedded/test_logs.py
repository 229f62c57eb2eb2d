"""`lepton logs` against a real platform: every line stamped with its time and replica,
whatever wrote it; replicas merged by time; --replica, --since and -f; files rotated at
`logs.max_bytes` so a chatty function stays bounded on disk; the last lines of a stopped
replica kept."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from lepton.runtime import logstamp
from lepton_platform.logfiles import Record, parse
from tests.embedded.conftest import PlatformProcess, deployed_platform, start_platform
from tests.helpers import FUNCTIONS, ROOT, wait_for
from tests.test_cli_run import lepton_cli

SOURCE = FUNCTIONS / "platform" / "logs.py"
MAX_BYTES = 64 << 10


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    yield from deployed_platform(tmp_path_factory, "logs", SOURCE, env={"LEPTON_LOG_MAX_BYTES": str(MAX_BYTES), "LEPTON_LOG_KEEP": "2"})


def logs(platform: PlatformProcess, *args: str) -> subprocess.CompletedProcess:
    return lepton_cli("logs", *args, env={"LEPTON_URL": platform.url, "LEPTON_TOKEN": platform.token})


def records(output: str) -> list[Record]:
    found = [parse(line) for line in output.splitlines()]
    assert all(found), output
    return found


def check_writers(platform: PlatformProcess) -> None:
    marker = uuid.uuid4().hex[:8]
    with platform.client() as api:
        replica = api.invoke("writers", {"marker": marker})
    shown = logs(platform, "writers", "--tail", "100")
    assert shown.returncode == 0, shown.stderr
    mine = {(r.stream, r.message) for r in records(shown.stdout) if marker in r.message and r.replica == replica}
    assert mine == {
        ("out", f"PRINT {marker}"),
        ("err", f"WARNING logs-test: LOGGING {marker}"),
        ("err", f"STDERR {marker}"),
        ("out", f"FD1 {marker}"),
        ("err", f"FD2 {marker}"),
    }


def test_every_writer_is_stamped_with_time_and_replica(platform):
    check_writers(platform)
    startup = [r for r in records(logs(platform, "writers").stdout) if "Application startup complete" in r.message]
    assert startup and startup[0].stream == "err" and startup[0].message == "INFO uvicorn.error: Application startup complete."


def test_replicas_are_merged_by_time_and_filtered(platform):
    ticks = lambda: [r for r in records(logs(platform, "ticker", "--tail", "5000").stdout) if r.message.startswith("TICK")]  # noqa: E731
    both = wait_for(
        lambda: (found := ticks()) and len({r.replica for r in found}) == 2 and len(found) > 60 and found,
        timeout=60,
        message="two replicas ticking",
    )
    times = [r.time for r in both]
    assert times == sorted(times)
    switches = sum(1 for a, b in zip(both, both[1:]) if a.replica != b.replica)
    assert switches > 10, "the two replicas' lines are interleaved, not one file after the other"

    one = both[-1].replica
    only = records(logs(platform, "ticker", "--replica", one, "--tail", "5000").stdout)
    assert {r.replica for r in only} == {one} and len(only) >= sum(1 for r in both if r.replica == one)
    revision = one.rsplit("-", 1)[0]  # a prefix: the revision's replicas
    assert {r.replica for r in records(logs(platform, "ticker", "--replica", revision, "--tail", "5000").stdout)} == {
        r.replica for r in both
    }

    middle = both[len(both) // 2].time
    since = records(logs(platform, "ticker", "--since", middle, "--tail", "5000").stdout)
    assert all(r.time >= middle for r in since)
    assert {(r.replica, r.message) for r in both if r.time >= middle} <= {(r.replica, r.message) for r in since}
    started = logstamp.stamp(time.time() - 2)
    recent = records(logs(platform, "ticker", "--since", "1s", "--tail", "5000").stdout)
    assert recent and all(r.time >= started for r in recent) and len(recent) < len(since)
    assert records(logs(platform, "ticker", "--tail", "3").stdout)[-1].time >= both[-1].time
    assert len(records(logs(platform, "ticker", "--tail", "3").stdout)) == 3


def test_bad_filters_are_one_line_errors(platform):
    bad = logs(platform, "ticker", "--since", "10x")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "HTTP 422" in bad.stderr and "since '10x' is neither a duration" in bad.stderr
    naive = logs(platform, "ticker", "--since", "2026-12-02T09:41:42")
    assert naive.returncode == 1 and "has no time zone" in naive.stderr
    unknown = logs(platform, "ticker", "--replica", "nope-00001")
    assert unknown.returncode == 1 and "HTTP 404" in unknown.stderr and "no replica 'nope-00001'" in unknown.stderr
    with platform.http() as http:
        assert http.get("/v1/functions/ticker/logs", params={"replica": "../x"}).status_code == 422


def test_follow_shows_new_lines(platform):
    follower = subprocess.Popen(
        [sys.executable, "-m", "lepton.cli", "logs", "writers", "-f", "--tail", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "LEPTON_URL": platform.url, "LEPTON_TOKEN": platform.token},
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in follower.stdout], daemon=True)
    reader.start()
    try:
        marker = uuid.uuid4().hex[:8]
        deadline = time.monotonic() + 30
        seen: list[Record] = []
        while not any(r.message == f"FD2 {marker}" for r in seen):
            assert time.monotonic() < deadline, seen
            if not seen:
                with platform.client() as api:
                    api.invoke("writers", {"marker": marker})
            try:
                seen += records(lines.get(timeout=1))
            except queue.Empty:
                continue
        assert all(marker in r.message for r in seen), "--tail 0: no history"
        assert [r.time for r in seen] == sorted(r.time for r in seen)
    finally:
        follower.kill()
        follower.wait()
        reader.join(10)
        follower.stdout.close()


def test_a_chatty_function_stays_bounded_on_disk(platform):
    with platform.client() as api:
        assert api.invoke("chatty", {"lines": 4000}) == 4000  # about 1 MB of lines
    folder = platform.home / "logs" / "chatty"
    sizes = {path.name: path.stat().st_size for path in folder.iterdir()}
    assert all(size <= MAX_BYTES for size in sizes.values()), sizes
    [served] = [name.removesuffix(".log.1") for name in sizes if name.endswith(".log.1")]
    assert sorted(name for name in sizes if name.startswith(served)) == [f"{served}.log", f"{served}.log.1", f"{served}.log.2"]
    newest = [int(r.message.split()[1]) for r in records((folder / f"{served}.log").read_text()) if r.message.startswith("CHATTY")]
    assert newest[-1] == 3999
    shown = [
        int(r.message.split()[1]) for r in records(logs(platform, "chatty", "--tail", "5000").stdout) if r.message.startswith("CHATTY")
    ]
    assert shown == list(range(shown[0], 4000)) and 500 < len(shown) < 1000, "what is kept, from .log.2 to .log, in order"


def test_a_stopped_replica_writes_its_last_partial_lines(platform):
    marker = uuid.uuid4().hex[:8]
    with platform.client() as api:
        replica = api.invoke("goodbye", {"marker": marker})
    wait_for(lambda: platform.info("goodbye")["replicas"] == 0, timeout=30, message="goodbye scaled to zero")
    shown = records(logs(platform, "goodbye", "--replica", replica).stdout)
    assert {("out", f"PARTIAL {marker}"), ("out", f"FD-PARTIAL {marker}")} <= {(r.stream, r.message) for r in shown}
    assert any("Finished server process" in r.message for r in shown)
    assert all(p.name.endswith(".log") for p in (platform.home / "logs" / "goodbye").iterdir()), (
        "the rotated files its replicas never filled are gone"
    )


def test_a_replica_started_without_the_template_process_is_stamped_too(tmp_path):
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", fork=False), home, tmp_path)
    try:
        running.deploy(SOURCE, "writers")
        check_writers(running)
    finally:
        running.process.stop()
