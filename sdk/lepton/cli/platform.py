"""Platform commands: up, deploy, ls, info, invoke, logs, rm, revisions, rollback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from lepton.cli.knative import ImageOpt
from lepton.errors import LeptonError

PlatformOpt = Annotated[Optional[str], typer.Option("--platform", envvar="LEPTON_URL", help="Platform URL [default: http://127.0.0.1:8765].")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="LEPTON_TOKEN", help="API token [default: $LEPTON_HOME/token].", show_default=False)]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="'table' or 'json' (for scripts).")]
DEPLOY_PARALLELISM = 8


class TargetMismatch(LeptonError):
    """`--target` names a backend the platform does not run."""


def client(platform: str | None, token: str | None):  # noqa: ANN201 - lepton.Client
    from lepton.client import Client

    return Client(platform, token)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def check_output(output: str) -> bool:
    if output not in ("table", "json"):
        raise typer.BadParameter(f"{output!r}; use 'table' or 'json'", param_hint="--output")
    return output == "json"


def fetch(path: str, platform: str | None, token: str | None, output: str, *, paged: bool = False) -> Any:
    """GET a /v1 resource (every page of a `paged` list): printed as JSON (returning None)
    with --output json, else returned."""
    as_json = check_output(output)
    with client(platform, token) as api:
        data = list(api.pages(path)) if paged else api.request("GET", path).json()
    if as_json:
        emit_json(data)
        return None
    return data


def in_parallel(call: Callable[[Any], Any], items: list[Any], progress: Callable[[int], None] = lambda done: None) -> list[Any]:
    """`call` on each item, DEPLOY_PARALLELISM at a time (the platform bounds how many replicas
    start at once); results in the items' order. The first failure stops what has not started
    and is raised."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    with ThreadPoolExecutor(DEPLOY_PARALLELISM) as pool:
        futures = [pool.submit(call, item) for item in items]
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=0.2, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f.done() and f.exception() is not None), None)
            if failed is not None:
                for future in pending:
                    future.cancel()
                raise failed.exception()
            progress(len(futures) - len(pending))
        return [future.result() for future in futures]


def console():  # noqa: ANN201 - rich Console on stderr, so stdout stays clean for --output json
    from rich.console import Console

    return Console(stderr=True)


def register(app: typer.Typer) -> None:
    @app.command()
    def up(
        host: Annotated[str, typer.Option(envvar="LEPTON_HOST", help="Address to bind; loopback by default.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(envvar="LEPTON_PORT")] = 8765,
        no_fork: Annotated[bool, typer.Option("--no-fork", help="Start replicas as fresh processes, not forked from a template.")] = False,
        log_level: Annotated[str, typer.Option(envvar="LEPTON_LOG_LEVEL")] = "info",
    ) -> None:
        """Run the embedded platform in the foreground (state under $LEPTON_HOME)."""
        from lepton_platform.server import run

        run(host, port, fork=not no_fork, log_level=log_level)

    @app.command()
    def deploy(
        target: Annotated[str, typer.Argument(metavar="FILE[:NAME]")],
        target_kind: Annotated[str, typer.Option("--target", help="'embedded' or 'knative'.")] = "embedded",
        no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the deploy has started.")] = False,
        platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table", image: ImageOpt = None,
    ) -> None:
        """Package and deploy every function in FILE (or just NAME) through the platform: the
        embedded one, or (--target knative) the one installed on a cluster with knative/install."""
        as_json = check_output(output)
        if target_kind not in ("embedded", "knative"):
            raise typer.BadParameter(f"{target_kind!r}; use 'embedded' or 'knative'", param_hint="--target")
        from lepton.loader import load_functions, split_target
        from lepton.packaging import package

        con = console()
        with client(platform, token) as api, con.status("packaging...") as status:
            backend = api.request("GET", "/healthz").json().get("backend", "embedded")
            if backend != target_kind:
                raise TargetMismatch(f"the platform at {api.url} runs the {backend} backend, not {target_kind}; "
                                     + ("point --platform (LEPTON_URL) at the platform installed on the cluster (knative/install)"
                                        if target_kind == "knative" else "use --target knative"))
            functions = load_functions(target)
            artifact = package(split_target(target)[0], functions)
            status.update(f"uploading {len(artifact.data) / 1024:.0f} KiB ({artifact.digest[:19]}...)")
            api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
            names = sorted(functions)
            requests = [{"artifact": artifact.digest, "function": name, "wait": not no_wait, "image": image or ""} for name in names]
            # Every function is checked before any is deployed; the first check also counts
            # them all against the platform's limits.
            status.update(f"checking {len(requests)} function{'s' if len(requests) > 1 else ''}...")
            checks = [{**request, "dry_run": True, "deploying": names if n == 0 else []} for n, request in enumerate(requests)]
            in_parallel(lambda body: api.request("POST", "/v1/functions", json=body), checks)
            status.update(f"deploying {len(requests)}: starting each new revision and waiting until it is ready...")
            results = in_parallel(lambda body: api.request("POST", "/v1/functions", json=body).json(), requests,
                                  progress=lambda done: status.update(f"deploying: {done}/{len(requests)} ready..."))
        if as_json:
            emit_json(results)
            return
        for r in results:
            note = "unchanged" if not r["changed"] else r["status"]
            typer.echo(f"{r['function']}  {r['revision'] or '-'}  {note}  {r['url']}")
            if r.get("warning"):
                typer.echo(f"warning: {r['warning']}", err=True)

    @app.command("ls")
    def list_functions(platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
        """Functions with revision, ready state, replicas and URL."""
        functions = fetch("/v1/functions", platform, token, output, paged=True)
        if functions is None:
            return
        from rich.table import Table

        table = Table("NAME", "REVISION", "READY", "REPLICAS", "URL", "TRIGGERS", box=None)
        for fn in functions:
            table.add_row(fn["name"], fn["revision"], f"{fn['ready']}/{fn['desired']}", str(fn["replicas"]), fn["url"], str(len(fn["triggers"])))
        print_table(table)

    @app.command()
    def info(name: str, platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
        """One function: revision, replicas, scaling, triggers."""
        fn = fetch(f"/v1/functions/{name}", platform, token, output)
        if fn is None:
            return
        scale = fn["scale"]
        typer.echo(f"name:      {fn['name']}\nkind:      {fn['kind']}\nrevision:  {fn['revision']}\nurl:       {fn['url']}\npublic:    {fn['public']}")
        typer.echo(f"replicas:  {fn['ready']} ready / {fn['replicas']} / desired {fn['desired']}  (in flight {fn['in_flight']})")
        typer.echo(f"scaling:   min {scale['min']}, max {scale['max']}, target {scale['target']:g}, concurrency {scale['concurrency']}, "
                   f"to zero after {scale['scale_down_after']:g}s, timeout {scale['timeout']:g}s")
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
                typer.echo(f"pod:       {replica['id']}  {replica['state']}  {'ready' if replica['ready'] else 'not ready'}  "
                           f"revision {replica['revision']}  restarts {replica['restarts']}")
                continue
            cores = ",".join(map(str, replica["cpus"])) or "any"
            gpus = f"  gpus {','.join(map(str, replica['gpus']))}" if replica.get("gpus") else ""
            memory = f"  {replica['memory_bytes'] / 2**20:.0f} MiB" if replica.get("memory_bytes") is not None else ""
            typer.echo(f"replica:   {replica['id']}  {replica['state']}  pid {replica['pid']}  cpus {cores}{gpus}{memory}  "
                       f"in flight {replica['in_flight']}  {'forked' if replica['forked'] else 'fresh process'}")
        for trig in fn["triggers"]:
            typer.echo(f"trigger:   {json.dumps(trig)}")

    @app.command()
    def invoke(
        name: str,
        payload: Annotated[Optional[str], typer.Argument(metavar="[JSON]", help="JSON object of the parameters.")] = None,
        file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the JSON body from a file ('-' for stdin).")] = None,
        async_: Annotated[bool, typer.Option("--async", help="Start it as an async job: print the job's id and URL "
                                                            "and return (see `lepton jobs`).")] = False,
        platform: PlatformOpt = None, token: TokenOpt = None,
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

    @app.command()
    def logs(
        name: str,
        follow: Annotated[bool, typer.Option("--follow", "-f")] = False,
        tail: Annotated[int, typer.Option(help="Lines of history to show.")] = 200,
        platform: PlatformOpt = None, token: TokenOpt = None,
    ) -> None:
        """Logs of a function's replicas."""
        with client(platform, token) as api:
            for chunk in api.get_stream(f"/v1/functions/{name}/logs", params={"tail": tail, "follow": follow}):
                sys.stdout.write(chunk)
                sys.stdout.flush()

    @app.command()
    def rm(name: str, platform: PlatformOpt = None, token: TokenOpt = None) -> None:
        """Stop a function's replicas and remove it."""
        with client(platform, token) as api:
            api.request("DELETE", f"/v1/functions/{name}")
        typer.echo(f"removed {name}")

    @app.command()
    def revisions(name: str, platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
        """Revision history of a function."""
        revs = fetch(f"/v1/functions/{name}/revisions", platform, token, output, paged=True)
        if revs is None:
            return
        from datetime import datetime

        from rich.table import Table

        table = Table("REVISION", "STATUS", "ROUTED", "CREATED", "DIGEST", box=None)
        for r in revs:
            created = datetime.fromtimestamp(r["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
            table.add_row(r["id"], r["status"], "100%" if r["routed"] else "", created, r["digest"][:19])
        print_table(table)

    @app.command()
    def rollback(
        name: str, revision: Annotated[Optional[str], typer.Argument(help="Revision id; default: the one before.")] = None,
        platform: PlatformOpt = None, token: TokenOpt = None,
    ) -> None:
        """Route 100% of a function's traffic to an earlier revision."""
        with client(platform, token) as api:
            result = api.request("POST", f"/v1/functions/{name}/rollback", json={"revision": revision}).json()
        typer.echo(f"{name} now serves {result['revision']}")


def print_table(table: Any) -> None:
    from rich.console import Console

    Console(width=200).print(table)

