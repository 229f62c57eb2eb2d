"""`lepton events send|dlq|redeliver` and `lepton triggers ls`."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from lepton.cli.options import OutputOpt, PlatformOpt, TokenOpt, check_output, client
from lepton.cli.output import emit_json, fetch, print_table

events_app = typer.Typer(help="The platform's CloudEvents broker: send events, inspect and redeliver dead letters.", no_args_is_help=True)
triggers_app = typer.Typer(help="Triggers and sources with their delivery settings.", no_args_is_help=True)


@events_app.command()
def send(
    type: Annotated[str, typer.Option("--type", help="CloudEvent type, e.g. com.example.order.")],
    source: Annotated[str, typer.Option("--source", help="CloudEvent source, e.g. /my/app.")],
    data: Annotated[str | None, typer.Option("--data", help="JSON payload.")] = None,
    event_id: Annotated[str | None, typer.Option("--id", help="Event id [default: a new UUID].")] = None,
    subject: Annotated[str | None, typer.Option("--subject")] = None,
    attr: Annotated[list[str] | None, typer.Option("--attr", help="Extension attribute NAME=VALUE (repeatable).")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Post one CloudEvent to the broker (202 once it is stored durably)."""
    as_json = check_output(output)
    event: dict[str, Any] = {"specversion": "1.0", "id": event_id or str(uuid.uuid4()), "source": source, "type": type}
    if subject:
        event["subject"] = subject
    for item in attr or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"{item!r}; use NAME=VALUE", param_hint="--attr")
        event[name] = value
    if data is not None:
        try:
            event["data"] = json.loads(data)
        except json.JSONDecodeError as exc:
            raise typer.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from None
        event["datacontenttype"] = "application/json"
    with client(platform, token) as api:
        result = api.request(
            "POST", "/v1/events", content=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
        ).json()
    if as_json:
        emit_json(result)
    else:
        typer.echo(f"accepted {event['id']}" if result["accepted"] else f"duplicate {event['id']} (already accepted)")


@events_app.command()
def dlq(
    limit: Annotated[int, typer.Option(help="How many, newest first.", min=1, max=1000)] = 100,
    after: Annotated[int | None, typer.Option("--after", metavar="ID", help="Only those older than dead letter ID.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Dead letters: events that ran out of delivery attempts, with the last error."""
    letters = fetch(f"/v1/deadletters?limit={limit}" + (f"&after={after}" if after else ""), platform, token, output)
    if letters is None:
        return
    from rich.table import Table

    table = Table("ID", "TRIGGER", "FUNCTION", "EVENT", "ATTEMPTS", "ERROR", box=None)
    for d in letters:
        table.add_row(
            str(d["id"]),
            d["trigger"],
            d["function"],
            f"{d['event']['type']} {d['event']['id']}",
            str(d["attempts"]),
            f"{d['code']} {d['message']}"[:80],
        )
    print_table(table)


@events_app.command()
def redeliver(letter_id: Annotated[int, typer.Argument(metavar="ID")], platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Send a dead letter to its trigger again."""
    with client(platform, token) as api:
        result = api.request("POST", f"/v1/deadletters/{letter_id}/redeliver").json()
    typer.echo(f"dead letter {letter_id} queued for {result['trigger']}")


@triggers_app.command("ls")
def list_triggers(platform: PlatformOpt = None, token: TokenOpt = None, output: OutputOpt = "table") -> None:
    """Triggers and sources: what they match, where they deliver, retries, backlog."""
    triggers = fetch("/v1/triggers", platform, token, output, paged=True)
    if triggers is None:
        return
    from rich.table import Table

    table = Table("ID", "FUNCTION", "KIND", "MATCHES", "DELIVERY", "PENDING", "LAG", box=None)
    for t in triggers:
        d = t["delivery"]
        if t["kind"] == "cron":
            what = f"{t['cron']['schedule']} ({t['cron']['timezone']})"
        elif t["kind"] == "dead-letter":
            what = f"dead letters of {t['owner']}"
        else:
            what = json.dumps(
                {**({"attributes": t["attributes"]} if t["attributes"] else {}), **({"filters": t["filters"]} if t["filters"] else {})}
            )
        delivery = f"retry {d['retry']} {d['backoff']} {d['delay']:g}s" + (
            f", dead letters to {d['dead_letter']}" if d["dead_letter"] else ""
        )
        table.add_row(t["id"], t["function"], t["kind"], what, delivery, str(t["pending"]), f"{t['lag_seconds']:.1f}s")
    print_table(table)
