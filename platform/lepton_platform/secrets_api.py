"""`/v1/secrets`: set, list, describe and remove secrets (admin token only).

Values go in and never come out: no response, log line or error message here carries one.
The body of `PUT` is read by hand, not by a pydantic model, so that a refused value is never
echoed back in a validation error.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Request

from lepton.names import check_secret_name
from lepton_platform.dependencies import Caller, PlatformDep
from lepton_platform.errors import Conflict
from lepton_platform.service import Platform

logger = logging.getLogger("lepton.platform.secrets")

router = APIRouter(prefix="/v1", tags=["secrets"])

BODY_SCHEMA = {
    "type": "object",
    "required": ["value"],
    "additionalProperties": False,
    "properties": {"value": {"type": "string", "description": "the secret's value (UTF-8 text, no NUL); never returned"}},
}


def valid_name(name: str) -> str:
    try:
        return check_secret_name(name)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None


def users(platform: Platform, name: str) -> list[str]:
    """Deployed functions with a revision that serves (in a split, or by tag) and declares the secret."""
    return sorted({fleet.name for fleet in platform.serving() if name in fleet.spec.secrets})


async def read_value(request: Request, name: str, limit: int) -> str:
    """The `value` of a `{"value": "..."}` body, checked; the messages never quote it."""
    # A JSON string may escape each byte as \\uXXXX: allow for that, and for the envelope.
    most = limit * 6 + 1024
    if int(request.headers.get("content-length") or 0) > most:
        raise HTTPException(413, f"secret {name}: the value is over the limit of {limit} bytes (limits.max_secret_bytes)")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise HTTPException(413, f"secret {name}: the value is over the limit of {limit} bytes (limits.max_secret_bytes)")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not `from exc`: a JSONDecodeError holds the whole body, value and all
        raise HTTPException(400, f'secret {name}: the body must be a JSON object {{"value": "..."}}') from None
    if not isinstance(document, dict) or set(document) != {"value"}:
        raise HTTPException(400, f'secret {name}: the body must be a JSON object with exactly one field, "value"')
    value = document["value"]
    if not isinstance(value, str):
        raise HTTPException(400, f'secret {name}: "value" must be a string, not {type(value).__name__}')
    try:
        size = len(value.encode())
    except UnicodeEncodeError:  # not `from exc`: it holds the value
        raise HTTPException(400, f"secret {name}: the value is not valid Unicode text (a lone surrogate)") from None
    if size > limit:
        raise HTTPException(
            413,
            f"secret {name}: the value has {size} bytes, over the limit of {limit} bytes "
            "(limits.max_secret_bytes in config.yaml, or LEPTON_MAX_SECRET_BYTES)",
        )
    if "\x00" in value:
        raise HTTPException(400, f"secret {name}: the value contains a NUL character, which an environment variable cannot hold")
    return value


def describe(platform: Platform, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": info["name"],
        "created_at": info["created_at"],
        "updated_at": info["updated_at"],
        "version": info["version"],
        "used_by": users(platform, info["name"]),
    }


@router.put(
    "/secrets/{name}",
    summary="Set a secret; replaces the replicas of the functions that use it",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": BODY_SCHEMA}}}},
)
async def set_secret(name: str, request: Request, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("set secrets")
    valid_name(name)
    value = await read_value(request, name, platform.config.limits.max_secret_bytes)
    # On Knative, each secret is also a Kubernetes Secret its Services refer to.
    async with platform.secrets_lock:
        await platform.backend.put_secret(name, value)  # first: a refusal there (a SecretError) changes nothing
        changed = await asyncio.to_thread(platform.vault.set, name, value)
    replaced = await platform.secrets_changed(name) if changed else []
    logger.info(
        "secret %s %s%s", name, "set" if changed else "unchanged", f"; replaced the replicas of {', '.join(replaced)}" if replaced else ""
    )
    return {"name": name, "changed": changed, "replaced": replaced}


@router.get("/secrets", summary="List secrets: names, when they changed, who uses them (never values)")
async def list_secrets(caller: Caller, platform: PlatformDep) -> list[dict[str, Any]]:
    caller.admin("list secrets")
    return [describe(platform, info) for info in await asyncio.to_thread(platform.vault.list)]


@router.get("/secrets/{name}", summary="Describe one secret (never its value)")
async def get_secret(name: str, caller: Caller, platform: PlatformDep) -> dict[str, Any]:
    caller.admin("read secrets")
    return describe(platform, await asyncio.to_thread(platform.vault.info, valid_name(name)))


@router.delete("/secrets/{name}", summary="Remove a secret; refused while a deployed function declares it, unless force")
async def remove_secret(name: str, caller: Caller, platform: PlatformDep, force: bool = False) -> dict[str, Any]:
    caller.admin("remove secrets")
    await asyncio.to_thread(platform.vault.info, valid_name(name))  # 404 when unknown
    used_by = users(platform, name)
    if used_by and not force:
        raise Conflict(
            f"secret {name} is used by {', '.join(used_by)}: their new replicas could not start without it; "
            "remove or redeploy them without it first, or use force"
        )
    async with platform.secrets_lock:
        await platform.backend.delete_secret(name)
        await asyncio.to_thread(platform.vault.remove, name)
    if used_by:
        logger.warning("secret %s removed while %s declare it: their new replicas will not start", name, ", ".join(used_by))
    return {"name": name, "removed": True, "used_by": used_by}
