"""Async jobs on the embedded platform: `Prefer: respond-async` on `/fn/NAME`, `/v1/jobs`,
retries, limits, cancellation, the broker events jobs publish, and kill -9."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.embedded.conftest import PlatformProcess, deployed_platform, start_platform
from tests.helpers import FUNCTIONS, log_records

JOBS = FUNCTIONS / "platform" / "jobs.py"
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    yield from deployed_platform(tmp_path_factory, "jobs", JOBS, {"LEPTON_MAX_JOB_RESULT_BYTES": "4096", "LEPTON_MAX_QUEUED_JOBS": "5"})


def submit(http: httpx.Client, function: str, body: dict) -> str:
    response = http.post(f"/fn/{function}", json=body, headers=ASYNC)
    assert response.status_code == 202, response.text
    assert response.headers["preference-applied"] == "respond-async"
    assert response.headers["location"] == response.json()["url"] == f"/v1/jobs/{response.json()['id']}"
    return response.json()["id"]


def final(http: httpx.Client, job: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        state = http.get(f"/v1/jobs/{job}", params={"wait": 10}).json()
        if state["state"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return state


def notes(home: Path, **match: object) -> list[dict]:
    return [n for n in map(json.loads, log_records(home, "JOB")) if all(n.get(k) == v for k, v in match.items())]


def test_a_job_is_stored_then_runs_and_keeps_its_result(platform):
    with platform.http() as http:
        job = submit(http, "slow", {"seconds": 0, "tag": "first"})
        done = final(http, job)
        assert done["state"] == "succeeded" and done["attempts"] == 1 and done["revision"] == "slow-00001"
        assert done["result"] == {"tag": "first", "job": job}  # the handler was told its job's id
        assert done["created_at"] <= done["started_at"] <= done["finished_at"]
        raw = http.get(f"/v1/jobs/{job}/result")
        assert raw.headers["content-type"] == "application/json" and raw.json() == done["result"]


def test_failed_attempts_are_retried_with_backoff_and_the_last_error_is_kept(platform):
    with platform.http() as http:
        recovers, gives_up = (
            submit(http, "flaky", {"key": "once", "fail_times": 1}),
            submit(http, "flaky", {"key": "always", "fail_times": 9}),
        )
        assert final(http, recovers) | {"result": "done after 2"} == final(http, recovers)
        assert final(http, recovers)["attempts"] == 2
        failed = final(http, gives_up)
        assert failed["state"] == "failed" and failed["attempts"] == failed["max_attempts"] == 3
        assert failed["status_code"] == 500 and "attempt 3 fails" in failed["error"]
    attempts = notes(platform.home, key="always")
    assert [n["attempt"] for n in attempts] == [1, 2, 3] and {n["job"] for n in attempts} == {gives_up}


def test_a_client_error_is_not_retried(platform):
    with platform.http() as http:
        failed = final(http, submit(http, "refuses", {"n": "not a number"}))
    assert failed["state"] == "failed" and failed["attempts"] == 1 and failed["max_attempts"] == 4
    assert failed["status_code"] == 422 and "n" in failed["error"]


def test_a_result_over_the_limit_fails_the_job_with_a_clear_error(platform):
    with platform.http() as http:
        small, large = submit(http, "big", {"size": 100}), submit(http, "big", {"size": 10_000})
        assert final(http, small)["result"] == "x" * 100
        failed = final(http, large)
    assert failed["state"] == "failed" and "over the 4096 byte limit" in failed["error"]
    assert "max_job_result_bytes" in failed["error"]


def test_jobs_wait_for_a_free_replica_and_a_queued_one_can_be_cancelled(platform):
    """`slow` takes one request at a time on one replica: the jobs run one after the other,
    in the order they were accepted, and the one cancelled while queued never runs."""
    with platform.http() as http:
        jobs = [submit(http, "slow", {"seconds": 0.3, "tag": f"turn-{i}"}) for i in range(3)]
        cancelled = http.delete(f"/v1/jobs/{jobs[2]}")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        again = http.delete(f"/v1/jobs/{jobs[2]}")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]
        assert [final(http, j)["state"] for j in jobs] == ["succeeded", "succeeded", "cancelled"]
        assert http.get(f"/v1/jobs/{jobs[2]}/result").status_code == 409
    runs = [n for n in notes(platform.home) if n.get("tag", "").startswith("turn-")]
    assert [n["tag"] for n in runs] == ["turn-0", "turn-1"]
    assert runs[1]["started"] >= runs[0]["started"] + 0.3  # the second began once the first ended


def test_a_running_job_can_be_cancelled(platform):
    """The platform stops waiting and hangs up; a sync handler's thread still runs to its end
    (Python cannot stop a thread), and then the replica serves again."""
    with platform.http() as http:
        job = submit(http, "slow", {"seconds": 1, "tag": "cut-short"})
        while http.get(f"/v1/jobs/{job}").json()["state"] != "running":
            time.sleep(0.02)
        cancelled = http.delete(f"/v1/jobs/{job}").json()
        assert cancelled["state"] == "cancelled" and cancelled["error"] == "cancelled while it ran"
        assert http.post("/fn/slow", json={"seconds": 0}, timeout=10).status_code == 200
        assert http.get(f"/v1/jobs/{job}").json()["state"] == "cancelled"


def test_bad_job_requests_get_clear_answers(platform):
    with platform.http() as http:
        for method, path in (("GET", "/v1/jobs/job-nope"), ("DELETE", "/v1/jobs/job-nope"), ("GET", "/v1/jobs/job-nope/result")):
            response = http.request(method, path)
            assert response.status_code == 404 and "job 'job-nope' not found" in response.json()["detail"]
        # Preferences we do not know are ignored (RFC 7240); tokens are case-insensitive.
        assert http.post("/fn/big", json={"size": 1}, headers={"Prefer": "return=minimal"}).json() == "x"
        assert http.post("/fn/big", json={"size": 1}, headers={"Prefer": "wait=3, RESPOND-ASYNC"}).status_code == 202
        assert http.post("/fn/nope", json={}, headers=ASYNC).status_code == 404
        assert http.get("/v1/jobs", params={"state": "done"}).status_code == 400
        for cursor in ("x", "9" * 30, "\u00b2"):
            assert http.get("/v1/jobs", params={"after": cursor}).status_code == 422, cursor
    assert httpx.post(f"{platform.url}/fn/big", json={"size": 1}, headers=ASYNC).status_code == 401
    assert httpx.get(f"{platform.url}/v1/jobs").status_code == 401


def test_jobs_are_listed_newest_first_a_page_at_a_time(platform):
    with platform.http() as http:
        made = [submit(http, "big", {"size": i}) for i in range(3)]
        seen, after = [], None
        while True:
            page = http.get("/v1/jobs", params={"function": "big", "limit": 2, **({"after": after} if after else {})}).json()
            seen += [j["id"] for j in page["jobs"]]
            assert all("result" not in j for j in page["jobs"])
            if not (after := page["next"]):
                break
        assert seen[:3] == made[::-1] and len(seen) == len(set(seen))
        assert all(j["function"] == "slow" for j in http.get("/v1/jobs", params={"function": "slow"}).json()["jobs"])


def test_a_finished_job_is_announced_to_the_broker(platform):
    with platform.http() as http:
        job = submit(http, "big", {"size": 3})
        final(http, job)
    deadline = time.monotonic() + 10
    while not (chained := [n["chained"] for n in notes(platform.home) if n.get("chained", {}).get("id") == job]):
        assert time.monotonic() < deadline, "no dev.lepton.job.succeeded event reached the trigger"
        time.sleep(0.05)
    assert chained[0] == {
        "id": job,
        "function": "big",
        "revision": "big-00001",
        "state": "succeeded",
        "attempts": 1,
        "status_code": 200,
        "error": None,
        "result": "xxx",
    }


@pytest.mark.slow
def test_every_accepted_job_ends_after_the_platform_is_killed(tmp_path):
    """kill -9 with one job running and three queued; after the restart all four succeed, the
    interrupted one running again with the same job id. Finished jobs go after job_ttl."""
    home = tmp_path / "home"
    first = PlatformProcess(start_platform(home, tmp_path / "first.log"), home, tmp_path)
    first.deploy(JOBS, "slow")
    with first.http() as http:
        jobs = [submit(http, "slow", {"seconds": 0.3, "tag": f"crash-{i}"}) for i in range(4)]
        while http.get(f"/v1/jobs/{jobs[0]}").json()["state"] != "running":
            time.sleep(0.01)
    first.process.stop(signal.SIGKILL)
    second = PlatformProcess(start_platform(home, tmp_path / "second.log", env={"LEPTON_JOB_TTL": "1"}), home, tmp_path)
    try:
        with second.http() as http:
            ended = [final(http, job) for job in jobs]
            assert [e["state"] for e in ended] == ["succeeded"] * 4, ended
            assert {e["result"]["job"] for e in ended} == set(jobs)
            deadline = time.monotonic() + 15
            while http.get(f"/v1/jobs/{jobs[0]}").status_code != 404:
                assert time.monotonic() < deadline, "a finished job outlived job_ttl"
                time.sleep(0.2)
    finally:
        second.process.stop(signal.SIGTERM)
    starts = [n["job"] for n in notes(home) if n.get("tag", "").startswith("crash-")]
    assert starts.count(jobs[0]) >= 1 and set(starts) == set(jobs)


def test_a_function_with_too_many_jobs_waiting_refuses_more_with_429(platform):
    """The module's platform allows 5 queued jobs per function (limits.max_queued_jobs)."""
    with platform.http() as http:
        busy = submit(http, "slow", {"seconds": 1, "tag": "holds-the-replica"})
        while http.get(f"/v1/jobs/{busy}").json()["state"] != "running":
            time.sleep(0.01)
        waiting = [submit(http, "slow", {"seconds": 0, "tag": f"waits-{i}"}) for i in range(5)]
        refused = http.post("/fn/slow", json={"seconds": 0}, headers=ASYNC)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "5 jobs waiting" in refused.json()["detail"] and "max_queued_jobs" in refused.json()["detail"]
        assert http.post("/fn/big", json={"size": 1}, headers=ASYNC).status_code == 202  # other functions are not held up
        http.delete(f"/v1/jobs/{waiting[0]}")
        assert http.post("/fn/slow", json={"seconds": 0}, headers=ASYNC).status_code == 202  # a cancelled one makes room
        assert all(final(http, job)["state"] in ("succeeded", "cancelled") for job in [busy, *waiting])
