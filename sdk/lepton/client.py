"""HTTP client for the platform (and for a function served directly by `lepton run`).

Example:
    client = lepton.Client()                      # LEPTON_URL / LEPTON_TOKEN or ~/.lepton/token
    client.invoke("add", {"a": 1, "b": 2})        # -> 3, through POST /fn/add
    for chunk in client.stream("count", {"n": 3}):
        print(chunk)
    job = client.spawn("add", a=1, b=2)           # an async job: job.result() -> 3
    list(client.map("add", [{"a": 1, "b": 2}]))   # [3], many calls at once
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx

from lepton import settings
from lepton.errors import ConnectError, InvocationError, LeptonError

if TYPE_CHECKING:
    from lepton.jobs import Job

MAP_CONCURRENCY = 16


class Client:
    """A connection to the platform's API and its functions, with the caller's token: what
    `fn.remote()`, `lepton.bucket` and the CLI use underneath. It pools connections, so keep
    one for many calls, and close it (or use `with`) when done.

    The URL and token come from the arguments, else LEPTON_URL and LEPTON_TOKEN, else the
    local platform and the admin token `lepton up` wrote (see the module's example).
    """

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 330.0, connections: int = 20) -> None:
        """`connections`: keep-alive connections kept open, enough for that many calls at once
        (`map` sets it; 20 is httpx's default)."""
        self.url = settings.platform_url(url)
        self.token = settings.token(token)
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        limits = httpx.Limits(max_connections=max(100, connections), max_keepalive_connections=connections)
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, limits=limits, event_hooks={"request": [_carry_trace]}
        )

    @property
    def closed(self) -> bool:
        """Whether `close` has run; a `Job` whose client is closed polls through a sibling."""
        return self._http.is_closed

    def sibling(self, connections: int = 20) -> Client:
        """A new client to the same platform with the same token, keeping `connections` open."""
        return Client(self.url, self.token, self.timeout, connections)

    def close(self) -> None:
        """Close the pooled connections; leaving a `with` block does it."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def function_path(name: str) -> str:
        """Where function `name` is invoked, relative to the platform's URL."""
        return f"/fn/{name}"

    def invoke(self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Call function `name` with a JSON object of its parameters; returns its JSON result."""
        return self.call(self.function_path(name), {**(payload or {}), **kwargs})

    def stream(self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Iterator[Any]:
        """Yield a streaming function's items as they arrive (JSON lines decoded)."""
        return self.call_stream(self.function_path(name), {**(payload or {}), **kwargs})

    def spawn(self, name: str, payload: dict[str, Any] | None = None, **kwargs: Any) -> Job:
        """Start function `name` as an async job; returns once the platform has stored it."""
        from lepton.jobs import Job

        response = self.request("POST", self.function_path(name), json={**(payload or {}), **kwargs}, headers={"Prefer": "respond-async"})
        if response.status_code != 202:
            raise LeptonError(
                f"the platform at {self.url} ran {name!r} at once instead of as a job "
                f"(HTTP {response.status_code}): it predates async jobs; upgrade it"
            )
        job = response.json()
        return Job(job["id"], job["function"], self, state=job["state"])

    def job(self, job_id: str) -> Job:
        """A job started earlier, by its id (raises `InvocationError` 404 if there is none)."""
        from lepton.jobs import Job

        job = self.request("GET", f"/v1/jobs/{job_id}").json()
        return Job(job["id"], job["function"], self, state=job["state"])

    def map(
        self,
        name: str,
        inputs: Iterable[dict[str, Any]],
        *,
        concurrency: int = MAP_CONCURRENCY,
        ordered: bool = True,
        return_exceptions: bool = False,
    ) -> Iterator[Any]:
        """Call function `name` once per dict of parameters, `concurrency` calls at a time,
        yielding results as they come (see `Function.map`)."""
        from lepton.jobs import dict_payloads, fan_out

        return fan_out(
            self,
            self.function_path(name),
            dict_payloads(inputs),
            concurrency=concurrency,
            ordered=ordered,
            return_exceptions=return_exceptions,
        )

    def call(self, path: str, payload: Any) -> Any:
        """POST `payload` as JSON to `path` (a function, or a server from `lepton run`) and
        return the answer: decoded JSON, the bytes of any other content type, None when empty."""
        response = self.request("POST", path, json=payload)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return response.content

    def call_stream(self, path: str, payload: Any) -> Iterator[Any]:
        """POST `payload` as JSON to `path` and yield the answer as it arrives: each decoded line
        of a JSON-lines stream, else chunks of text."""
        with self.open("POST", path, json=payload) as response:
            if response.headers.get("content-type", "").startswith("application/x-ndjson"):
                for line in response.iter_lines():
                    if line:
                        yield json.loads(line)
            else:
                yield from response.iter_text()

    def get_stream(self, path: str, **kwargs: Any) -> Iterator[str]:
        """GET a streaming text response (logs), yielding text as it arrives."""
        with self.open("GET", path, timeout=None, **kwargs) as response:
            yield from response.iter_text()

    @contextmanager
    def open(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A response whose body is read as it arrives; raises like `request` on errors."""
        try:
            with self._http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield response
        except httpx.TransportError as exc:
            raise ConnectError(f"cannot reach {self.url}: {exc}") from exc

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API request; raises `InvocationError` for 4xx/5xx, `ConnectError` if unreachable."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectError(f"cannot reach {self.url}: {exc}; is the platform up (`lepton up`)?") from exc
        if response.status_code >= 400:
            raise _error(response)
        return response

    def pages(self, path: str, *, limit: int = 500, **params: Any) -> Iterator[Any]:
        """Every item of a paged `/v1` list (functions, revisions, triggers, dead letters),
        fetching `limit` at a time and following each page's `Link: rel="next"`."""
        url: str | None = path
        query: dict[str, Any] | None = {**params, "limit": limit}
        while url is not None:
            response = self.request("GET", url, params=query)
            yield from response.json()
            url, query = response.links.get("next", {}).get("url"), None  # the link carries the query


def _carry_trace(request: httpx.Request) -> None:
    """Inside a function, its calls and the events it sends continue the trace it runs in (W3C
    `traceparent`). Only the runtime imports the tracing module: elsewhere there is no trace."""
    tracing = sys.modules.get("lepton.runtime.tracing")
    if tracing is not None and "traceparent" not in request.headers:
        request.headers.update(tracing.outgoing())


def _error(response: httpx.Response) -> InvocationError:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text or response.reason_phrase
    return InvocationError(response.status_code, detail, str(response.request.url.path))
