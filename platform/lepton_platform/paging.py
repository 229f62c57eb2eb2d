"""Lists the API hands out a page at a time: `?limit=&after=` in, the page and a
`Link: <...>; rel="next"` header out (RFC 8288, as GitHub's API does), so a list stays a JSON
list and a client follows the link until there is none.

An endpoint fetches one item more than `limit` (`keys_after` does it for a sorted list of
names) and `page` trims it, pointing the link past the page's last item when there was more."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Query, Request, Response

T = TypeVar("T")
DEFAULT_LIMIT = 100
Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many items")]


def keys_after(keys: list[str], after: str | None, count: int) -> list[str]:
    """The first `count` of the sorted `keys` that come after `after`."""
    start = bisect_right(keys, after) if after is not None else 0
    return keys[start : start + count]


def page(found: list[T], limit: int, request: Request, response: Response, cursor: Callable[[T], str | int]) -> list[T]:
    """`found` (up to `limit` + 1 items) cut to `limit`, with the link to the next page if
    there is one."""
    if len(found) <= limit:
        return found
    found = found[:limit]
    url = request.url.include_query_params(after=cursor(found[-1]))
    response.headers["link"] = f'<{url.path}?{url.query}>; rel="next"'
    return found
