"""The client side of async jobs and fan-out, against a real platform: `fn.map` and
`Client.map` (direct calls, streamed back), `fn.spawn` / `lepton.Job`, and `lepton jobs`."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

import lepton
from lepton.loader import load_functions
from tests.embedded.conftest import PlatformProcess, deployed_platform
from tests.helpers import FUNCTIONS
from tests.test_cli_run import lepton_cli

APP = FUNCTIONS / "jobs" / "app.py"


@pytest.fixture(scope="module")
def jobs_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """One platform with tests/functions/jobs deployed, shared by this module's tests."""
    yield from deployed_platform(tmp_path_factory, "jobs-client", APP)


@pytest.fixture(scope="module")
def fns() -> dict[str, lepton.Function]:
    return load_functions(str(APP))


@pytest.fixture
def platform_env(jobs_platform: PlatformProcess, monkeypatch: pytest.MonkeyPatch) -> PlatformProcess:
    """LEPTON_URL and LEPTON_TOKEN set, as in a user's script: fn.map and fn.spawn without a
    client read them."""
    monkeypatch.setenv("LEPTON_URL", jobs_platform.url)
    monkeypatch.setenv("LEPTON_TOKEN", jobs_platform.token)
    return jobs_platform


# -- fn.map ---------------------------------------------------------------------------------


def test_map_yields_results_in_input_order(platform_env, fns):
    square = fns["square"]
    assert list(square.map(range(200))) == [square(x) for x in range(200)]


def test_map_unordered_yields_every_result(platform_env, fns):
    square = fns["square"]
    assert sorted(square.map(range(200), ordered=False, concurrency=8)) == sorted(square(x) for x in range(200))


def test_map_takes_dicts_tuples_and_single_values(jobs_platform, fns):
    add = fns["add"]
    with jobs_platform.client() as api:
        assert list(add.map([(1, 2), {"a": 3, "b": 4}, (5,)], client=api)) == [3, 7, 5]
        assert list(fns["square"].map([3], client=api)) == [9]
        assert list(api.map("add", [{"a": 1, "b": 1}] * 3, concurrency=2)) == [2, 2, 2]
        with pytest.raises(TypeError, match="a dict of parameters per input"):
            list(api.map("add", [(1, 2)]))


def test_map_failures_come_in_place_or_raise_at_their_position(platform_env, fns):
    square = fns["square"]
    results = list(square.map([1, -2, 3], return_exceptions=True))
    assert results[0] == 1 and results[2] == 9
    assert isinstance(results[1], lepton.InvocationError) and results[1].status_code == 500
    assert "negative input -2" in str(results[1])

    taken = []
    with pytest.raises(lepton.InvocationError, match="negative input -3"):
        for value in square.map([1, 2, -3, 4, 5], concurrency=2):
            taken.append(value)
    assert taken == [1, 4]


def test_map_reads_inputs_only_as_results_are_taken(platform_env, fns):
    pulled = 0

    def inputs() -> Iterator[int]:
        nonlocal pulled
        for x in range(100_000):
            pulled += 1
            yield x

    results = fns["square"].map(inputs(), concurrency=4)
    assert pulled == 0  # nothing happens before the first result is asked for
    assert next(results) == 0
    assert pulled <= 2 * 4
    results.close()  # as a `break` does: nothing more is pulled, and the threads end
    for thread in threading.enumerate():
        if thread.name.startswith("lepton-map"):
            thread.join(10)
            assert not thread.is_alive()
    assert pulled <= 2 * 4


# -- fn.spawn and lepton.Job ----------------------------------------------------------------


def test_spawn_returns_a_job_whose_result_comes_later(platform_env, fns):
    job = fns["add"].spawn(a=1, b=2)
    assert job.function == "add"
    assert job.result(timeout=30) == 3
    status = job.status()
    assert (status["state"], status["attempts"], status["result"], status["status_code"]) == ("succeeded", 1, 3, 200)
    assert repr(job) == f"<lepton.Job {job.id} of 'add' succeeded>"
    with platform_env.client() as api:
        assert api.job(job.id).result() == 3  # re-attached by id
        with pytest.raises(lepton.InvocationError) as missing:
            api.job("job-0000")
        assert missing.value.status_code == 404
        assert api.spawn("shout", text="hi").result(timeout=30) == b"HI"  # not JSON: bytes


def test_a_failed_job_raises_its_error(jobs_platform):
    with jobs_platform.client() as api:
        job = api.spawn("add", a="not a number")
        with pytest.raises(lepton.JobFailed) as failure:
            job.result(timeout=30)
    assert isinstance(failure.value, lepton.InvocationError) and failure.value.status_code == 422
    assert str(failure.value).startswith(f"job {job.id} (add) failed after 1 attempt(s): 422: ")
    assert "valid integer" in str(failure.value)


def test_a_job_can_be_cancelled_and_waiting_can_time_out(jobs_platform):
    with jobs_platform.client() as api:
        job = api.spawn("unlucky")
        with pytest.raises(TimeoutError, match=f"job {job.id} \\(unlucky\\) is still (queued|running) after 0.2s"):
            job.result(timeout=0.2)
        assert job.cancel() is True
        assert job.status()["state"] == "cancelled"
        with pytest.raises(lepton.JobCancelled, match="was cancelled"):
            job.result()
        assert job.cancel() is False


# -- the CLI --------------------------------------------------------------------------------


def test_cli_starts_waits_for_lists_and_cancels_jobs(jobs_platform):
    env = {"LEPTON_URL": jobs_platform.url, "LEPTON_TOKEN": jobs_platform.token}

    def cli(*commands: tuple[str, ...]) -> list[subprocess.CompletedProcess]:
        """Independent commands side by side: each is a Python start-up."""
        with ThreadPoolExecutor(len(commands)) as pool:
            return list(pool.map(lambda args: lepton_cli(*args, env=env), commands))

    started = lepton_cli("invoke", "add", '{"a": 40, "b": 2}', "--async", env=env)
    assert started.returncode == 0, started.stderr
    job_id, url = started.stdout.split()
    assert url == f"{jobs_platform.url}/v1/jobs/{job_id}"
    with jobs_platform.client() as api:
        waiting = api.spawn("unlucky")  # queued for its retry until cancelled

    waited, listed, cancelled = cli(("jobs", "wait", job_id), ("jobs", "ls", "--limit", "1"), ("jobs", "cancel", waiting.id))
    assert waited.stdout == "42\n"
    assert waiting.id in listed.stdout and job_id not in listed.stdout
    assert "more jobs: run the same command with --after" in listed.stderr
    assert cancelled.stdout == f"cancelled {waiting.id}\n"

    shown, waited = cli(("jobs", "get", job_id), ("jobs", "wait", waiting.id))
    assert "state:     succeeded, attempt 1 of 1" in shown.stdout and "result:    42" in shown.stdout
    assert waited.returncode == 1 and waited.stderr == f"error: job {waiting.id} (unlucky) was cancelled\n"
