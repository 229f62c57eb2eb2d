"""`lepton` entry point: builds the Typer app and turns `LeptonError`s into one stderr line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from lepton.cli import build, knative, platform
from lepton.cli.buckets import bucket_app
from lepton.cli.events import events_app, triggers_app
from lepton.cli.jobs import jobs_app
from lepton.cli.keys import keys_app
from lepton.cli.secrets import secret_app
from lepton.errors import LeptonError

app = typer.Typer(
    name="lepton",
    help="Serverless functions for AI workloads: run, deploy and operate them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _group() -> None:
    """Serverless functions for AI workloads: run, deploy and operate them."""


@app.command()
def run(
    target: Annotated[str, typer.Argument(metavar="FILE[:NAME]", help="Python file and optional function name.")],
    port: Annotated[int, typer.Option(envvar="PORT", help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(envvar="HOST", help="Address to bind; loopback by default.")] = "127.0.0.1",
    log_level: Annotated[str, typer.Option(envvar="LEPTON_LOG_LEVEL")] = "info",
) -> None:
    """Serve one function directly with the runtime, no platform (the dev loop)."""
    from lepton.loader import load_function
    from lepton.runtime.server import configure_logging, serve

    configure_logging(log_level)
    fn = load_function(target)
    typer.echo(f"Serving {fn.name!r} ({fn.signature.kind}) on http://{host}:{port}/  (Ctrl+C to stop)", err=True)
    raise typer.Exit(serve(fn, host=host, port=port, log_level=log_level))


# The top-level commands live in one module per area; here they are put on the app, in the
# order `lepton --help` lists them (the command groups come after the commands).
app.command()(platform.up)
app.command()(platform.deploy)
app.command("ls")(platform.list_functions)
app.command()(platform.info)
app.command()(platform.invoke)
app.command()(platform.logs)
app.command()(platform.rm)
app.command()(platform.revisions)
app.command("traffic")(platform.set_traffic)
app.command()(platform.rollback)
app.command()(knative.render)
app.command()(build.build)

app.add_typer(bucket_app, name="bucket")
app.add_typer(events_app, name="events")
app.add_typer(triggers_app, name="triggers")
app.add_typer(secret_app, name="secret")
app.add_typer(keys_app, name="keys")
app.add_typer(jobs_app, name="jobs")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI on `argv` (default: sys.argv); a `LeptonError` is one `error:` line on
    stderr and its `exit_code`, not a traceback."""
    try:
        app(args=argv, standalone_mode=True)
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
