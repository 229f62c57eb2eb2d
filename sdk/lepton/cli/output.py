"""How commands print: tables and JSON on stdout, progress and notes on stderr.

`--output json` prints what the API answered, unchanged, so scripts read stdout alone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from lepton.cli.options import check_output, client

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def emit_json(data: Any) -> None:
    """`data` as indented JSON on stdout (the `--output json` form)."""
    typer.echo(json.dumps(data, indent=2, default=str))


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


def print_table(table: Table) -> None:
    """A table on stdout, 200 columns wide so piped output is not wrapped."""
    from rich.console import Console

    Console(width=200).print(table)


def console() -> Console:
    """A rich Console on stderr, for spinners and progress, so stdout stays clean for --output json."""
    from rich.console import Console

    return Console(stderr=True)
