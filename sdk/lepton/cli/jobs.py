"""`lepton jobs ls|get|wait|cancel`: async jobs, started with `lepton invoke --async` or `fn.spawn()`."""

from __future__ import annotations

import base64
import json
import sys
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import typer

from lepton.cli.options import OutputOpt, PlatformOpt, TokenOpt, client
from lepton.cli.output import fetch, print_table

jobs_app = typer.Typer(help="Async jobs: calls the platform runs (with retries) and keeps the results of.", no_args_is_help=True)

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
JobId = Annotated[str, typer.Argument(metavar="ID", help="The job's id, as `lepton invoke --async` printed it.")]


@jobs_app.command("ls")
def list_(
    function: Annotated[str | None, typer.Option("--function", help="Only this function's jobs.")] = None,
    state: Annotated[str | None, typer.Option("--state", help=f"Only jobs in this state: {', '.join(STATES)}.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 100,
    after: Annotated[str | None, typer.Option("--after", metavar="CURSOR", help="Start after this cursor (the next page).")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Jobs, newest first, a page at a time."""
    if state is not None and state not in STATES:
        raise typer.BadParameter(f"{state!r}; use one of {', '.join(STATES)}", param_hint="--state")
    query = {k: v for k, v in {"function": function, "state": state, "limit": limit, "after": after}.items() if v is not None}
    page = fetch(f"/v1/jobs?{urlencode(query)}", platform, token, output)
    if page is None:
        return
    from rich.table import Table

    table = Table("ID", "FUNCTION", "STATE", "ATTEMPTS", "CREATED", "TOOK", "ERROR", box=None)
    for job in page["jobs"]:
        took = f"{job['finished_at'] - job['started_at']:.2f}s" if job["finished_at"] and job["started_at"] else "-"
        table.add_row(
            job["id"],
            job["function"],
            job["state"],
            f"{job['attempts']}/{job['max_attempts']}",
            _time(job["created_at"]),
            took,
            (job["error"] or "")[:80],
        )
    print_table(table)
    if page["next"]:
        typer.echo(f"more jobs: run the same command with --after {page['next']}", err=True)


@jobs_app.command()
def get(job_id: JobId, platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """One job: state, attempts, timings, and its result or error."""
    job = fetch(f"/v1/jobs/{job_id}", platform, token, output)
    if job is None:
        return
    typer.echo(f"id:        {job['id']}\nfunction:  {job['function']} (revision {job['revision'] or '-'})")
    typer.echo(f"state:     {job['state']}, attempt {job['attempts']} of {job['max_attempts']}")
    for label, key in (("created", "created_at"), ("started", "started_at"), ("finished", "finished_at"), ("retry at", "next_attempt_at")):
        if job[key]:
            typer.echo(f"{label + ':':<10} {_time(job[key])}")
    if job["status_code"]:
        typer.echo(f"status:    HTTP {job['status_code']} ({job['content_type'] or 'no body'})")
    if job["error"]:
        typer.echo(f"error:     {job['error']}")
    if "result" in job:
        typer.echo(f"result:    {json.dumps(job['result'])}")
    elif "result_base64" in job:
        typer.echo(f"result:    {len(base64.b64decode(job['result_base64']))} bytes; `lepton jobs wait {job['id']}` prints them")


@jobs_app.command()
def wait(
    job_id: JobId,
    timeout: Annotated[
        float | None,
        typer.Option(min=0, help="Give up after this many seconds (the job goes on) [default: as long as it takes].", show_default=False),
    ] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Wait for a job and print its result; exits non-zero with the error if it failed, was cancelled or timed out."""
    with client(platform, token) as api:
        _print_result(api.job(job_id).result(timeout))


@jobs_app.command()
def cancel(job_id: JobId, platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Cancel a queued or running job."""
    with client(platform, token) as api:
        job = api.job(job_id)
        if job.cancel():
            typer.echo(f"cancelled {job_id}")
        else:
            typer.echo(f"job {job_id} already {job.status()['state']}; nothing to cancel")


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _print_result(result: Any) -> None:
    """JSON as one line, like `lepton invoke`; any other body as the bytes it is."""
    if isinstance(result, bytes):
        sys.stdout.buffer.write(result)
        sys.stdout.flush()
    else:
        typer.echo(json.dumps(result))
