"""Platform commands: up, deploy, ls, info, invoke, logs, rm, revisions, traffic, rollback.

Plain functions, registered on the `lepton` app in `lepton.cli.main`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lepton.cli.options import ImageOpt, OutputOpt, PlatformOpt, TokenOpt, check_output, client
from lepton.cli.output import console, emit_json, fetch, print_table
from lepton.errors import LeptonError

DEPLOY_PARALLELISM = 8

T = TypeVar("T")
R = TypeVar("R")


class TargetMismatch(LeptonError):
    """`--target` names a backend the platform does not run."""


def in_parallel(call: Callable[[T], R], items: list[T], progress: Callable[[int], None] = lambda done: None) -> list[R]:
    """`call` on each item, DEPLOY_PARALLELISM at a time (the platform bounds how many replicas
    start at once); results in the items' order. The first failure stops what has not started
    and is raised."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(DEPLOY_PARALLELISM) as pool:
        futures = [pool.submit(call, item) for item in items]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            failed = next((error for f in futures if f.done() and (error := f.exception()) is not None), None)
            if failed is not None:
                for future in pending:
                    future.cancel()
                raise failed
            progress(len(futures) - len(pending))
        return [future.result() for future in futures]


def up(
    host: Annotated[str, typer.Option(envvar="LEPTON_HOST", help="Address to bind; loopback by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="LEPTON_PORT")] = 8765,
    no_fork: Annotated[bool, typer.Option("--no-fork", help="Start replicas as fresh processes, not forked from a template.")] = False,
    log_level: Annotated[str, typer.Option(envvar="LEPTON_LOG_LEVEL")] = "info",
) -> None:
    """Run the embedded platform in the foreground (state under $LEPTON_HOME)."""
    from lepton_platform.server import run

    run(host, port, fork=not no_fork, log_level=log_level)


def deploy(
    target: Annotated[str, typer.Argument(metavar="FILE[:NAME]")],
    target_kind: Annotated[str, typer.Option("--target", help="'embedded' or 'knative'.")] = "embedded",
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the deploy has started.")] = False,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
    image: ImageOpt = None,
    traffic: Annotated[
        int | None,
        typer.Option(
            "--traffic",
            min=0,
            max=100,
            metavar="PCT",
            help="Give the new revision PCT% of traffic (a canary); the revision with the largest share keeps the rest. Default: 100.",
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option("--tag", help="Tag the new revision: /fn/NAME@TAG (or header Lepton-Tag: TAG) reaches it, whatever its share."),
    ] = None,
) -> None:
    """Package and deploy every function in FILE (or just NAME) through the platform: the
    embedded one, or (--target knative) the one installed on a cluster with knative/install."""
    as_json = check_output(output)
    if target_kind not in ("embedded", "knative"):
        raise typer.BadParameter(f"{target_kind!r}; use 'embedded' or 'knative'", param_hint="--target")
    from lepton.artifacts import package
    from lepton.loader import load_functions, split_target

    con = console()
    with client(platform, token) as api, con.status("packaging...") as status:
        backend = api.request("GET", "/healthz").json().get("backend", "embedded")
        if backend != target_kind:
            raise TargetMismatch(
                f"the platform at {api.url} runs the {backend} backend, not {target_kind}; "
                + (
                    "point --platform (LEPTON_URL) at the platform installed on the cluster (knative/install)"
                    if target_kind == "knative"
                    else "use --target knative"
                )
            )
        functions = load_functions(target)
        artifact = package(split_target(target)[0], functions)
        status.update(f"uploading {len(artifact.data) / 1024:.0f} KiB ({artifact.digest[:19]}...)")
        api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
        names = sorted(functions)
        requests = [
            {
                "artifact": artifact.digest,
                "function": name,
                "wait": not no_wait,
                "image": image or "",
                **({"traffic": traffic} if traffic is not None else {}),
                **({"tag": tag} if tag else {}),
            }
            for name in names
        ]
        # Every function is checked before any is deployed; the first check also counts
        # them all against the platform's limits.
        status.update(f"checking {len(requests)} function{'s' if len(requests) > 1 else ''}...")
        checks = [{**request, "dry_run": True, "deploying": names if n == 0 else []} for n, request in enumerate(requests)]
        in_parallel(lambda body: api.request("POST", "/v1/functions", json=body), checks)
        status.update(f"deploying {len(requests)}: starting each new revision and waiting until it is ready...")
        results = in_parallel(
            lambda body: api.request("POST", "/v1/functions", json=body).json(),
            requests,
            progress=lambda done: status.update(f"deploying: {done}/{len(requests)} ready..."),
        )
    if as_json:
        emit_json(results)
        return
    for r in results:
        note = "unchanged" if not r["changed"] else r["status"]
        if r.get("traffic") and r["revision"] and (traffic is not None or tag):
            share = r["traffic"]["split"].get(r["revision"], 0)
            note += f", {share}% of traffic" + (f", tag {tag}: {r['url']}@{tag}" if tag else "")
        typer.echo(f"{r['function']}  {r['revision'] or '-'}  {note}  {r['url']}")
        if r.get("warning"):
            typer.echo(f"warning: {r['warning']}", err=True)


def list_functions(platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """Functions with revision, ready state, replicas and URL."""
    functions = fetch("/v1/functions", platform, token, output, paged=True)
    if functions is None:
        return
    from rich.table import Table

    table = Table("NAME", "REVISION", "READY", "REPLICAS", "URL", "TRIGGERS", box=None)
    for fn in functions:
        table.add_row(
            fn["name"], fn["revision"], f"{fn['ready']}/{fn['desired']}", str(fn["replicas"]), fn["url"], str(len(fn["triggers"]))
        )
    print_table(table)


def info(name: str, platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """One function: revision, replicas, scaling, triggers."""
    fn = fetch(f"/v1/functions/{name}", platform, token, output)
    if fn is None:
        return
    scale = fn["scale"]
    typer.echo(
        f"name:      {fn['name']}\nkind:      {fn['kind']}\nrevision:  {fn['revision']}\nurl:       {fn['url']}\npublic:    {fn['public']}"
    )
    typer.echo(f"replicas:  {fn['ready']} ready / {fn['replicas']} / desired {fn['desired']}  (in flight {fn['in_flight']})")
    typer.echo(
        f"scaling:   min {scale['min']}, max {scale['max']}, target {scale['target']:g}, concurrency {scale['concurrency']}, "
        f"to zero after {scale['scale_down_after']:g}s, timeout {scale['timeout']:g}s"
    )
    if fn.get("backend") == "knative":
        typer.echo(f"knative:   revision {fn.get('knative_revision') or '-'} at {fn.get('service_url')}")
        if fn.get("error"):
            typer.echo(f"cluster:   {fn['error']}")
    if fn.get("sandbox"):
        typer.echo(f"sandbox:   {fn['sandbox']}")
    if fn.get("memory_kills"):
        typer.echo(f"memory:    {fn['memory_kills']} replica(s) stopped for going over memory={fn['memory']}")
    for replica in fn.get("replica_details", []):
        if fn.get("backend") == "knative":
            typer.echo(
                f"pod:       {replica['id']}  {replica['state']}  {'ready' if replica['ready'] else 'not ready'}  "
                f"revision {replica['revision']}  restarts {replica['restarts']}"
            )
            continue
        cores = ",".join(map(str, replica["cpus"])) or "any"
        gpus = f"  gpus {','.join(map(str, replica['gpus']))}" if replica.get("gpus") else ""
        memory = f"  {replica['memory_bytes'] / 2**20:.0f} MiB" if replica.get("memory_bytes") is not None else ""
        typer.echo(
            f"replica:   {replica['id']}  {replica['state']}  pid {replica['pid']}  cpus {cores}{gpus}{memory}  "
            f"in flight {replica['in_flight']}  {'forked' if replica['forked'] else 'fresh process'}"
        )
    for share in fn.get("traffic", []):
        tags = f"  tags {','.join(share['tags'])}" if share["tags"] else ""
        replicas = f"  replicas {share['ready']} ready / {share['replicas']}" if "replicas" in share else ""
        typer.echo(f"traffic:   {share['revision']}  {share['percent']}%{tags}{replicas}")
    for trig in fn["triggers"]:
        typer.echo(f"trigger:   {json.dumps(trig)}")


def invoke(
    name: str,
    payload: Annotated[str | None, typer.Argument(metavar="[JSON]", help="JSON object of the parameters.")] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Read the JSON body from a file ('-' for stdin).")] = None,
    async_: Annotated[
        bool, typer.Option("--async", help="Start it as an async job: print the job's id and URL and return (see `lepton jobs`).")
    ] = False,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: Annotated[str, typer.Option("--output", help="With --async: 'json' prints the job as JSON.")] = "table",
) -> None:
    """Invoke a function through the platform; streams streaming output."""
    as_json = check_output(output)
    if file is not None:
        text = sys.stdin.read() if str(file) == "-" else file.read_text()
    else:
        text = payload or "{}"
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="JSON") from None
    if async_:
        if not isinstance(body, dict):
            raise typer.BadParameter("--async takes a JSON object of the parameters", param_hint="JSON")
        with client(platform, token) as api:
            job = api.spawn(name, body)
        url = f"{api.url}{job.url}"
        if as_json:
            emit_json({"id": job.id, "function": job.function, "state": "queued", "url": url})
        else:
            typer.echo(f"{job.id}  {url}")
        return
    with client(platform, token) as api:
        for chunk in api.call_stream(api.function_path(name), body):
            typer.echo(chunk if isinstance(chunk, str) else json.dumps(chunk), nl=not isinstance(chunk, str))
    sys.stdout.flush()


def logs(
    name: str,
    follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
    tail: Annotated[int, typer.Option(help="Lines of history to show (the last ones, of all replicas).")] = 200,
    replica: Annotated[str | None, typer.Option(help="Only this replica (pod on Knative), or those whose id starts so.")] = None,
    since: Annotated[str | None, typer.Option(help="Only lines this recent: 30s, 10m, 2h, 1d, or an RFC 3339 time.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Logs of a function's replicas, merged by time: `TIME REPLICA STREAM [trace=ID] TEXT`."""
    params: dict[str, object] = {"tail": tail, "follow": follow}
    if replica:
        params["replica"] = replica
    if since:
        params["since"] = since
    with client(platform, token) as api:
        for chunk in api.get_stream(f"/v1/functions/{name}/logs", params=params):
            sys.stdout.write(chunk)
            sys.stdout.flush()


def rm(name: str, platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Stop a function's replicas and remove it."""
    with client(platform, token) as api:
        api.request("DELETE", f"/v1/functions/{name}")
    typer.echo(f"removed {name}")


def revisions(name: str, platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """Revision history of a function."""
    revs = fetch(f"/v1/functions/{name}/revisions", platform, token, output, paged=True)
    if revs is None:
        return
    from datetime import datetime

    from rich.table import Table

    table = Table("REVISION", "STATUS", "TRAFFIC", "TAGS", "CREATED", "DIGEST", box=None)
    for r in revs:
        created = datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        share = r.get("percent", 100 if r["routed"] else 0)
        table.add_row(r["id"], r["status"], f"{share}%" if share else "", ",".join(r.get("tags", [])), created, r["digest"][:19])
    print_table(table)


def set_traffic(
    name: str,
    shares: Annotated[
        list[str] | None, typer.Argument(metavar="[REV=PCT]...", help="Shares of ready revisions, adding up to 100; none: as they are.")
    ] = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", metavar="TAG=REV", help="Give REV the address /fn/NAME@TAG.")] = None,
    untag: Annotated[list[str] | None, typer.Option("--untag", metavar="TAG", help="Remove a tag.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Share a function's traffic between its ready revisions and tag them; with no
    shares or tags, show how it is shared now."""
    as_json = check_output(output)
    split = parse_pairs(shares or [], "REV=PCT", as_int=True)
    tagged: dict[str, Any] = parse_pairs(tags or [], "--tag TAG=REV")
    for tag in untag or []:
        if tag in tagged:
            raise typer.BadParameter(f"tag {tag!r} is both set and removed", param_hint="--untag")
        tagged[tag] = None
    with client(platform, token) as api:
        if split or tagged:
            body = {"split": split or None, "tags": tagged}
            result = api.request("PUT", f"/v1/functions/{name}/traffic", json=body).json()
        else:
            result = api.request("GET", f"/v1/functions/{name}/traffic").json()
    if as_json:
        emit_json(result)
        return
    for rev, pct in sorted(result["split"].items(), key=lambda item: -item[1]):
        typer.echo(f"{rev}  {pct}%")
    for tag, rev in sorted(result["tags"].items()):
        typer.echo(f"{rev}  tag {tag}  /fn/{name}@{tag}")


def rollback(
    name: str,
    revision: Annotated[str | None, typer.Argument(help="Revision id; default: the one before.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Route 100% of a function's traffic to an earlier revision (its tags stay)."""
    with client(platform, token) as api:
        result = api.request("POST", f"/v1/functions/{name}/rollback", json={"revision": revision}).json()
    typer.echo(f"{name} now serves {result['revision']}")


def parse_pairs(items: list[str], form: str, *, as_int: bool = False) -> dict[str, Any]:
    """`KEY=VALUE` arguments as a dict; a malformed or repeated key is a one-line error."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise typer.BadParameter(f"{item!r}; use {form}")
        if key in out:
            raise typer.BadParameter(f"{key!r} is given twice ({form})")
        if as_int:
            if not value.isdigit():
                raise typer.BadParameter(f"{item!r}: the percent must be a whole number ({form})")
            out[key] = int(value)
        else:
            out[key] = value
    return out
