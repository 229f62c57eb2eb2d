"""`/v1/keys`: access keys for callers (admin token only). The key itself is in the answer to
`POST /v1/keys` and nowhere else, ever: the platform keeps only its hash."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import BaseModel, ConfigDict, Field

from lepton.names import check_function_name
from lepton_platform.auth import identify
from lepton_platform.dependencies import Authorization, PlatformDep
from lepton_platform.errors import NotFound
from lepton_platform.keys import parse_expiry

MAX_FUNCTIONS = 1000


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt `functions` must not make a key for every function

    functions: list[str] = Field(
        default_factory=list, max_length=MAX_FUNCTIONS, description="deployed functions the key may invoke; empty: every function"
    )
    expires: str | None = Field(
        None, max_length=32, description="'30d', '12h', '45m', '90s' or a number of days (at most 10 years); null: never"
    )


def keys_admin(platform: PlatformDep, authorization: Authorization = None) -> None:
    """The admin token; any other caller gets a 403 that says what it may not do."""
    identify(platform, authorization, what="manage keys").admin("manage keys")


router = APIRouter(prefix="/v1/keys", tags=["keys"], dependencies=[Depends(keys_admin)])


@router.post("", status_code=201, summary="Create an access key; this answer is the only time the key is shown")
async def create_key(body: KeyRequest, response: Response, platform: PlatformDep) -> dict[str, Any]:
    try:
        expires_in = parse_expiry(body.expires) if body.expires is not None else None
        names = sorted({check_function_name(name) for name in body.functions})
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    unknown = [name for name in names if name not in platform.fleets]
    if unknown:
        raise HTTPException(
            400,
            f"no function {', '.join(map(repr, unknown))} is deployed: a key names deployed functions "
            "(one that is not is most likely a typo); `lepton ls` lists them",
        )
    key, plain = await asyncio.to_thread(platform.keys.create, names, expires_in)
    response.headers["cache-control"] = "no-store"
    return {"id": key.id, "key": plain, "functions": sorted(key.functions), "created_at": key.created_at, "expires_at": key.expires_at}


@router.get("", summary="List access keys (ids and what they may do; never the keys or their hashes)")
async def list_keys(platform: PlatformDep) -> list[dict[str, Any]]:
    now = time.time()
    return [key.to_json(now) for key in platform.keys.all()]


@router.delete("/{key_id}", summary="Revoke an access key; it stops working at once")
async def revoke_key(key_id: str, platform: PlatformDep) -> dict[str, Any]:
    key = await asyncio.to_thread(platform.keys.revoke, key_id)
    if key is None:
        raise NotFound(f"key {key_id!r} not found; `lepton keys ls` lists them")
    return key.to_json(time.time())
