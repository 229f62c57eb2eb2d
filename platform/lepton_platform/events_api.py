"""`/v1/triggers` and `/v1/deadletters`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field, ValidationError

from lepton.triggers import Delivery
from lepton_platform.broker.triggers import from_request
from lepton_platform.dependencies import Caller, PlatformDep
from lepton_platform.errors import Conflict, NotFound
from lepton_platform.paging import DEFAULT_LIMIT, Limit, page

router = APIRouter(prefix="/v1")


class TriggerRequest(BaseModel):
    function: str = Field(description="function that receives the matching events")
    attributes: dict[str, str] = Field(default_factory=dict, description="exact match on attributes (Knative filter.attributes)")
    filters: list[dict[str, Any]] = Field(default_factory=list, description="Knative filters: exact, prefix, suffix, all, any, not")
    delivery: dict[str, Any] = Field(default_factory=dict, description="retry, backoff, delay, timeout, dead_letter")


@router.get("/triggers", tags=["events"], summary="Triggers with their delivery settings and backlog, by id, a page at a time")
async def list_triggers(
    caller: Caller,
    request: Request,
    response: Response,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    after: Annotated[str | None, Query(max_length=256, description="the last id of the page before")] = None,
) -> list[dict[str, Any]]:
    caller.admin("list triggers")
    return page(platform.broker.status(limit=limit + 1, after=after), limit, request, response, lambda t: t["id"])


@router.post("/triggers", status_code=201, tags=["events"], summary="Add a trigger for a deployed function")
async def add_trigger(body: TriggerRequest, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("add triggers")
    platform.fleet(body.function)
    try:
        triggers = from_request(body.function, body.attributes, body.filters, Delivery(**body.delivery))
    except (ValueError, ValidationError) as exc:
        raise HTTPException(400, str(exc)) from None
    await platform.broker.add_triggers(triggers)
    return triggers[0].to_json()


@router.delete("/triggers/{trigger_id}", tags=["events"], summary="Remove a trigger added through the API")
async def delete_trigger(trigger_id: str, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("remove triggers")
    trigger = platform.broker.triggers.get(trigger_id)
    if trigger is None:
        raise NotFound(f"trigger {trigger_id!r} not found; `lepton triggers ls` lists them")
    if trigger.origin != "api":
        raise Conflict(f"trigger {trigger_id!r} comes from {trigger.declared_by}'s triggers=[...]; redeploy to change it")
    await platform.broker.delete_trigger(trigger_id)
    return {"trigger": trigger_id, "deleted": True}


@router.get("/deadletters", tags=["events"], summary="Events that ran out of delivery attempts, newest first, a page at a time")
async def dead_letters(
    caller: Caller,
    request: Request,
    response: Response,
    platform: PlatformDep,
    limit: Limit = DEFAULT_LIMIT,
    after: Annotated[int | None, Query(ge=1, le=2**63 - 1, description="the last id of the page before")] = None,
) -> list[dict[str, Any]]:
    caller.admin("read dead letters")
    return page(platform.broker.log.dead_letters(limit + 1, before=after), limit, request, response, lambda d: d["id"])


@router.post("/deadletters/{letter_id}/redeliver", tags=["events"], summary="Queue a dead letter for its trigger again")
async def redeliver(letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("redeliver events")
    trigger = platform.broker.log.redeliver(letter_id)
    if trigger is None:
        raise NotFound(f"dead letter {letter_id} not found; `lepton events dlq` lists them")
    platform.broker.poke(trigger)
    return {"id": letter_id, "trigger": trigger, "queued": True}
