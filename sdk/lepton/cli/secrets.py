"""`lepton secret set|ls|rm`: values functions read as environment variables, stored encrypted."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lepton.cli.options import OutputOpt, PlatformOpt, TokenOpt, check_output, client
from lepton.cli.output import emit_json, fetch, print_table
from lepton.errors import LeptonError
from lepton.names import check_secret_name

secret_app = typer.Typer(
    help="Secrets: values a function declaring them (secrets=[...]) reads as environment variables.", no_args_is_help=True
)


class SecretInputError(LeptonError):
    """The name or the value given to `lepton secret` cannot be used; nothing was sent."""

    exit_code = 2


def _name(name: str) -> str:
    try:
        return check_secret_name(name)
    except ValueError as exc:
        raise SecretInputError(str(exc)) from None


def _value(name: str, value: str | None, from_file: Path | None, from_env: str | None) -> str:
    """The value from exactly one source: VALUE, --from-file, --from-env, else stdin (piped)
    or a hidden prompt (a terminal)."""
    given = [flag for flag, v in (("VALUE", value), ("--from-file", from_file), ("--from-env", from_env)) if v is not None]
    if len(given) > 1:
        raise SecretInputError(f"secret {name}: give the value one way, not with {' and '.join(given)}")
    if value is not None:
        return value
    if from_file is not None:
        try:
            return from_file.read_bytes().decode()
        except OSError as exc:
            raise SecretInputError(f"secret {name}: cannot read {from_file}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretInputError(f"secret {name}: {from_file} is not UTF-8 text; base64-encode binary values") from None
    if from_env is not None:
        if from_env not in os.environ:
            raise SecretInputError(f"secret {name}: environment variable {from_env} is not set")
        return os.environ[from_env]
    if sys.stdin.isatty():
        prompted: str = typer.prompt(f"Value of {name}", hide_input=True)
        return prompted
    data = sys.stdin.buffer.read()
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise SecretInputError(f"secret {name}: standard input is not UTF-8 text; base64-encode binary values") from None
    # `echo value | lepton secret set NAME`: the newline echo adds is not part of the value.
    return text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")


@secret_app.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="Upper case, e.g. HF_TOKEN: the environment variable the function reads.")],
    value: Annotated[
        str | None,
        typer.Argument(
            help="The value. On the command line it lands in shell history and the process list: prefer "
            "--from-env, --from-file, or standard input (without any, it is read from a pipe or a hidden prompt).",
            show_default=False,
        ),
    ] = None,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="Read the value from this file (as is).")] = None,
    from_env: Annotated[
        str | None, typer.Option("--from-env", metavar="VAR", help="Read the value from this environment variable.")
    ] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Set a secret (create or change it); the replicas of the functions that declare it are replaced."""
    as_json = check_output(output)
    text = _value(_name(name), value, from_file, from_env)
    with client(platform, token) as api:
        result = api.request("PUT", f"/v1/secrets/{name}", json={"value": text}).json()
    if as_json:
        emit_json(result)
    elif not result["changed"]:
        typer.echo(f"secret {name} unchanged")
    else:
        replaced = f"; replaced the replicas of {', '.join(result['replaced'])}" if result["replaced"] else ""
        typer.echo(f"secret {name} set{replaced}")


@secret_app.command("ls")
def list_(platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """Secrets: names, when they changed, and the functions that use them (never values)."""
    rows = fetch("/v1/secrets", platform, token, output)
    if rows is None:
        return
    from datetime import datetime

    from rich.table import Table

    table = Table("NAME", "UPDATED", "USED BY", box=None)
    for s in rows:
        table.add_row(s["name"], datetime.fromtimestamp(s["updated_at"]).strftime("%Y-%m-%d %H:%M:%S"), ", ".join(s["used_by"]) or "-")
    print_table(table)


@secret_app.command("rm")
def remove(
    name: str,
    force: Annotated[
        bool, typer.Option("--force", help="Remove it even while deployed functions declare it (their new replicas then cannot start).")
    ] = False,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove a secret; refused while a deployed function declares it, unless --force."""
    with client(platform, token) as api:
        result = api.request("DELETE", f"/v1/secrets/{_name(name)}", params={"force": "true" if force else "false"}).json()
    still = f" (still declared by {', '.join(result['used_by'])})" if result["used_by"] else ""
    typer.echo(f"removed secret {name}{still}")
