"""The events page: triggers with their backlog and lag, and dead letters to send again."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

if TYPE_CHECKING:
    from lepton_platform.console.app import Console

DEAD_LETTERS_SHOWN = 100


def routes(console: Console) -> list[Route]:
    broker = console.platform.broker

    async def page(request: Request) -> Response:
        session = console.viewer(request)
        before = request.query_params.get("before", "")
        letters = broker.log.dead_letters(DEAD_LETTERS_SHOWN + 1, before=int(before) if before.isdigit() and len(before) <= 18 else None)
        more = letters[DEAD_LETTERS_SHOWN - 1]["id"] if len(letters) > DEAD_LETTERS_SHOWN else None
        return console.render(request, "events.html", session, triggers=broker.status(), letters=letters[:DEAD_LETTERS_SHOWN], more=more)

    async def redeliver(request: Request) -> Response:
        session, _ = await console.actor(request)
        letter = request.path_params["letter"]
        trigger = broker.log.redeliver(letter) if letter < 2**63 else None
        if trigger is None:
            return console.done(session, "/ui/events", f"dead letter {letter} is gone: redelivered already?", "error")
        broker.poke(trigger)
        return console.done(session, "/ui/events", f"dead letter {letter} is queued for trigger {trigger} again.")

    return [
        Route("/ui/events", page, methods=["GET"]),
        Route("/ui/deadletters/{letter:int}/redeliver", redeliver, methods=["POST"]),
    ]
