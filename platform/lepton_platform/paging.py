"""Lists the API hands out a page at a time: `?limit=&after=` in, the page and a
`Link: <...>; rel="next"` header out (RFC 8288, as GitHub's API does), so a list stays a JSON
list and a client follows the link until there is none."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Request, Response

DEFAULT_LIMIT = 100
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many items")]


def link_next(request: Request, response: Response, after: str | int) -> None:
    """Point at the page after the item `after` (the last one of this page)."""
    url = request.url.include_query_params(after=after)
    response.headers["link"] = f'<{url.path}?{url.query}>; rel="next"'
