"""What the API's routes ask FastAPI for: the platform they act on, and who is calling.

The routers (`*_api.py`) are defined at module level and hold no state: a route gets the
platform of the app serving it (`app.state.platform`, set by `control_api.build_api`) as a
`PlatformDep` parameter, and its caller through `Caller` or the `admin_token` dependency;
the decisions themselves are in `auth.py`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from lepton_platform import auth
from lepton_platform.auth import Access
from lepton_platform.service import Platform

Authorization = Annotated[str | None, Header()]


async def get_platform(request: Request) -> Platform:
    # async: a sync dependency would cost a trip through the thread pool for an attribute read
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


def admin_token(platform: PlatformDep, authorization: Authorization = None) -> None:
    """The admin token, and nothing else: 401 without a bearer token, 403 with another one."""
    auth.require_admin(platform.token, authorization)


def caller(request: Request, platform: PlatformDep, authorization: Authorization = None) -> Access:
    """Admin token, a revision's scoped token, or a signed URL's query string; the route then
    asks the `Access` what it may do (`caller.bucket(...)`, `caller.admin(...)`)."""
    return auth.access(platform, request, authorization)


Caller = Annotated[Access, Depends(caller)]
