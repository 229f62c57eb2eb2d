"""`/v1/triggers` and `/v1/deadletters`, and how the ingress (`ingress.py`) reads events."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, ValidationError

from lepton.runtime.events import BATCH, FORMAT, STRUCTURED, BadEvent, parse
from lepton.triggers import Delivery
from lepton_platform.auth import Caller
from lepton_platform.broker.log import Event
from lepton_platform.broker.triggers import from_request

if TYPE_CHECKING:
    from lepton_platform.service import Platform

REQUIRED = ("specversion", "id", "source", "type")
ATTRIBUTE = re.compile(r"^[a-z0-9]{1,20}$")


class TriggerRequest(BaseModel):
    function: str = Field(description="function that receives the matching events")
    attributes: dict[str, str] = Field(default_factory=dict, description="exact match on attributes (Knative filter.attributes)")
    filters: list[dict[str, Any]] = Field(default_factory=list, description="Knative filters: exact, prefix, suffix, all, any, not")
    delivery: dict[str, Any] = Field(default_factory=dict, description="retry, backoff, delay, timeout, dead_letter")


def _check_attributes(names: Any, where: str) -> None:
    missing = [a for a in REQUIRED if a not in names]
    if missing:
        raise BadEvent(f"{where}missing required attribute{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    bad = [n for n in names if n not in ("data", "data_base64") and not ATTRIBUTE.match(n)]
    if bad:
        raise BadEvent(f"{where}attribute name {bad[0]!r} is invalid: use 1-20 lower-case letters and digits")


def read_events(headers: dict[str, str], body: bytes) -> list[Event]:
    """Binary, structured or batch mode into broker events; `BadEvent` says what is wrong."""
    ctype = headers.get("content-type", "")
    if ctype.startswith(BATCH):
        try:
            items = json.loads(body)
        except ValueError as exc:
            raise BadEvent(f"batch is not JSON: {exc}") from None
        if not isinstance(items, list) or not items:
            raise BadEvent("a batch must be a non-empty JSON array of structured events")
        events = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise BadEvent(f"event {i} of the batch is not a JSON object")
            _check_attributes(item, f"event {i} of the batch: ")
            try:
                events.append(Event.from_cloudevent(FORMAT.read(None, json.dumps(item).encode())))
            except Exception as exc:
                raise BadEvent(f"event {i} of the batch: {exc}") from None
        return events
    if "ce-specversion" in headers:
        _check_attributes({k[3:] for k in headers if k.startswith("ce-")}, "")
    elif ctype.startswith(STRUCTURED):
        try:
            item = json.loads(body)
        except ValueError as exc:
            raise BadEvent(f"structured event is not JSON: {exc}") from None
        if not isinstance(item, dict):
            raise BadEvent("a structured event must be a JSON object")
        _check_attributes(item, "")
    return [Event.from_cloudevent(parse(headers, body))]


def build_events_router(platform: Platform) -> APIRouter:
    router = APIRouter(prefix="/v1")
    broker = platform.broker

    @router.get("/triggers", tags=["events"], summary="Triggers and sources with their delivery settings and backlog")
    async def list_triggers(caller: Caller) -> list[dict[str, Any]]:
        caller.admin("list triggers")
        return broker.status()

    @router.post("/triggers", status_code=201, tags=["events"], summary="Add a trigger for a deployed function")
    async def add_trigger(body: TriggerRequest, caller: Caller) -> dict[str, Any]:
        caller.admin("add triggers")
        platform.fleet(body.function)
        try:
            triggers = from_request(body.function, body.attributes, body.filters, Delivery(**body.delivery))
        except (ValueError, ValidationError) as exc:
            raise HTTPException(400, str(exc)) from None
        await broker.add_triggers(triggers)
        return triggers[0].to_json()

    @router.delete("/triggers/{trigger_id}", tags=["events"], summary="Remove a trigger added through the API")
    async def delete_trigger(trigger_id: str, caller: Caller) -> dict[str, Any]:
        caller.admin("remove triggers")
        trigger = broker.triggers.get(trigger_id)
        if trigger is None:
            raise HTTPException(404, f"trigger {trigger_id!r} not found; `lepton triggers ls` lists them")
        if trigger.origin != "api":
            raise HTTPException(409, f"trigger {trigger_id!r} comes from {trigger.declared_by}'s triggers=[...]; redeploy to change it")
        await broker.delete_trigger(trigger_id)
        return {"trigger": trigger_id, "deleted": True}

    @router.get("/deadletters", tags=["events"], summary="Events that ran out of delivery attempts, newest first")
    async def dead_letters(caller: Caller, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
        caller.admin("read dead letters")
        return broker.log.dead_letters(limit)

    @router.post("/deadletters/{letter_id}/redeliver", tags=["events"], summary="Queue a dead letter for its trigger again")
    async def redeliver(letter_id: Annotated[int, Path(ge=1, le=2**63 - 1)], caller: Caller) -> dict[str, Any]:
        caller.admin("redeliver events")
        trigger = broker.log.redeliver(letter_id)
        if trigger is None:
            raise HTTPException(404, f"dead letter {letter_id} not found; `lepton events dlq` lists them")
        broker.poke(trigger)
        return {"id": letter_id, "trigger": trigger, "queued": True}

    return router
