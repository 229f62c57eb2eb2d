"""Options several command modules share, and what they make: the platform connection
(`--platform`, `--token` and the client they build), `--output` and `--image`.

Every option has an environment twin (settings precedence: flag > environment > default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from lepton.client import Client

PlatformOpt = Annotated[str | None, typer.Option("--platform", envvar="LEPTON_URL", help="Platform URL [default: http://127.0.0.1:8765].")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="LEPTON_TOKEN", help="API token [default: $LEPTON_HOME/token].", show_default=False)
]
OutputOpt = Annotated[str, typer.Option("--output", "-o", help="'table' or 'json' (for scripts).")]
ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image",
        envvar="LEPTON_IMAGE",
        show_default=False,
        help="knative: container image (from `lepton build`) [default: the runtime image].",
    ),
]


def client(platform: str | None, token: str | None) -> Client:
    """The API client for `--platform` and `--token`. Imported on first use: commands that
    never reach the platform (`run`, `render`, `build`, `--help`) do not load httpx."""
    from lepton.client import Client

    return Client(platform, token)


def check_output(output: str) -> bool:
    """Whether `--output` asks for JSON; refuses a format there is none of (exit code 2)."""
    if output not in ("table", "json"):
        raise typer.BadParameter(f"{output!r}; use 'table' or 'json'", param_hint="--output")
    return output == "json"
