"""The operations a backend provides. A deploy is two steps, so that a revision takes
traffic only once it is ready: `prove` starts it and waits (the previous revision keeps
serving, whatever happens), then `route` moves the traffic and the triggers to it, or
`split` shares the traffic between revisions (traffic.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol

from lepton.spec import FunctionSpec
from lepton_platform.catalog import Revision
from lepton_platform.logfiles import LogQuery
from lepton_platform.traffic import Routes, Traffic


class Serving(Protocol):
    """What the router and activator need of a function, whichever backend runs it."""

    revision: Revision

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> FunctionSpec: ...

    async def acquire(self, timeout: float, *, bounded: bool = True) -> tuple[Any, bool]:
        """A replica with a free slot, and whether the caller waited for a cold start;
        `bounded`: refused (Overloaded) when the function's queue is full."""

    def release(self, replica: Any) -> None: ...

    async def close(self) -> None: ...


class Backend(Protocol):
    name: str

    async def start(self) -> None:
        """Begin background work (the embedded template process)."""

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """Backend facts for GET /healthz."""

    def check(self, spec: FunctionSpec, digest: str, image: str) -> list[str]:
        """Refuse (DeployFailed) what this backend cannot run, before anything changes;
        returns the requirements to install first."""

    async def install(self, revision: Revision, missing: list[str]) -> None:
        """Install what `check` said is missing (DeployFailed when it cannot be)."""

    async def restore(self, revision: Revision) -> Serving:
        """Serve a function that was routed before the platform restarted."""

    async def prove(self, revision: Revision, current: Revision | None, *, rollback: bool = False) -> Any:
        """Start `revision` without routing to it and wait until it is ready; DeployFailed if
        it is not. `current` is the revision serving now; a rollback may reuse what runs."""

    async def route(self, revision: Revision, proof: Any, serving: Serving | None) -> Serving:
        """Send all traffic, and the function's triggers, to a proven revision."""

    async def split(
        self, traffic: Traffic, revisions: dict[str, Revision], current: Routes, proof: tuple[str, Any] | None = None
    ) -> Routes:
        """Serve `traffic` (shares and tags of ready `revisions`; `current` is what serves now,
        `proof` a deploy's proven revision and its proof) and put the main revision's
        triggers in place."""

    async def remove(self, function: str, serving: Serving) -> None: ...

    async def put_secret(self, name: str, value: str) -> None:
        """Keep a secret where the backend's replicas read it (the platform's vault has it already)."""

    async def delete_secret(self, name: str) -> None: ...

    def renew(self, serving: Serving) -> bool:
        """Replace the function's replicas, so they read their environment again; False when
        running ones cannot be replaced (they keep what they started with)."""

    async def replica_metrics(self) -> bytes:
        """The replicas' own series for the platform's /metrics, where no scraper reaches them."""

    async def status(self, serving: Serving) -> dict[str, Any]:
        """Replicas and their state, for `lepton ls` and `lepton info`."""

    async def logs(self, function: str, query: LogQuery) -> AsyncIterator[bytes]:
        """The function's replica logs as `query` asks (logfiles.py has the line format); raises
        NotFound, before any line, for a `query.replica` that matches no replica."""
