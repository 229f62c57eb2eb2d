"""Functions for the platform's async-job tests. Sandboxed replicas can only write their
scratch directory, so what a test must see (attempts, job ids) goes to the log as
`JOB {json}` lines (tests.helpers.log_records)."""

import json
import time

import lepton


def note(**fields) -> None:
    print("JOB " + json.dumps(fields), flush=True)


@lepton.function(concurrency=1, max_scale=1)
def slow(seconds: float, tag: str = "") -> dict:
    note(tag=tag, job=lepton.job_id(), started=time.time())
    time.sleep(seconds)
    return {"tag": tag, "job": lepton.job_id()}


@lepton.function(retries=lepton.Retries(max_retries=2, delay=0.05))
def flaky(key: str, fail_times: int) -> str:
    """Fails until it has been attempted `fail_times` times for this job."""
    import os
    from pathlib import Path

    attempts = Path(os.environ["TMPDIR"]) / key
    seen = int(attempts.read_text()) if attempts.exists() else 0
    attempts.write_text(str(seen + 1))
    note(key=key, attempt=seen + 1, job=lepton.job_id())
    if seen < fail_times:
        raise RuntimeError(f"attempt {seen + 1} fails")
    return f"done after {seen + 1}"


@lepton.function(retries=3)
def refuses(n: int) -> int:
    return n


@lepton.function()
def big(size: int) -> str:
    return "x" * size


@lepton.function(triggers=[lepton.on_event(type="dev.lepton.job.succeeded")])
def on_job(event: lepton.CloudEvent) -> None:
    note(chained=event.get_data() if isinstance(event.get_data(), dict) else json.loads(event.get_data()))
