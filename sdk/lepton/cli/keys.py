"""`lepton keys create|ls|revoke`: access keys for callers of functions."""

from __future__ import annotations

import time
from typing import Annotated
from urllib.parse import quote

import typer

from lepton.cli.options import OutputOpt, PlatformOpt, TokenOpt, check_output, client
from lepton.cli.output import emit_json, fetch, print_table

keys_app = typer.Typer(help="Access keys for callers: invoke functions and send events, nothing else.", no_args_is_help=True)


def _when(timestamp: float | None, never: str = "never") -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp)) if timestamp is not None else never


@keys_app.command()
def create(
    function: Annotated[
        list[str] | None, typer.Option("--function", "-f", help="A function the key may invoke (repeatable) [default: every function].")
    ] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="'30d', '12h', '45m', '90s' or a number of days [default: never].")
    ] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Create a key and print it: the only time it is shown."""
    as_json = check_output(output)
    with client(platform, token) as api:
        created = api.request("POST", "/v1/keys", json={"functions": function or [], "expires": expires}).json()
    if as_json:
        emit_json(created)
    else:
        typer.echo(created["key"])
    scope = ", ".join(created["functions"]) or "every function"
    typer.echo(f"key {created['id']} for {scope}, expires {_when(created['expires_at'])}; it is not shown again: store it now", err=True)


@keys_app.command("ls")
def list_keys(platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """Keys: id, the functions they invoke, when they expire, whether they still work."""
    keys = fetch("/v1/keys", platform, token, output)
    if keys is None:
        return
    from rich.table import Table

    table = Table("ID", "FUNCTIONS", "CREATED", "EXPIRES", "STATUS", "LAST USED", box=None)
    for k in keys:
        table.add_row(
            k["id"],
            ", ".join(k["functions"]) or "all",
            _when(k["created_at"]),
            _when(k["expires_at"]),
            k["status"],
            _when(k["last_used_at"], "-"),
        )
    print_table(table)


@keys_app.command()
def revoke(key_id: Annotated[str, typer.Argument(metavar="ID")], platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Revoke a key: it stops working at once."""
    with client(platform, token) as api:
        api.request("DELETE", f"/v1/keys/{quote(key_id, safe='')}")
    typer.echo(f"revoked key {key_id}")
