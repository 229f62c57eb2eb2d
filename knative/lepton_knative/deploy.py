"""A revision onto a cluster in two steps, so that it takes traffic only once it is ready.

1. `start`: the function's Secret (with the new revision's token) and the Service with the
   new template, its traffic still pinned to the revision serving now. Knative creates the
   new Revision; we wait until the Service is Ready, which needs that Revision ready. If it
   fails, nothing routes to it: the previous revision keeps every request.
2. `route`: the Service's traffic pinned to the new Revision, its Triggers and PingSources
   applied, the ones it no longer declares deleted, the old revision's token dropped.

Everything is rendered and validated before the first object is applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from lepton.spec import FunctionSpec
from lepton_knative.cluster import Cluster
from lepton_knative.manifests import LATEST, Target, pinned, render, secret, service, token_key
from lepton_knative.validation import ensure_valid

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    """The objects of one revision, rendered and validated."""

    spec: FunctionSpec
    target: Target
    service: dict[str, Any]
    others: list[dict[str, Any]]

    @property
    def revision(self) -> str:
        """The Knative Revision's name."""
        return self.service["spec"]["template"]["metadata"]["name"]

    @property
    def token_key(self) -> str:
        return token_key(self.spec, self.target.digest, self.target.image)


def plan(spec: FunctionSpec, target: Target) -> Plan:
    objects = render(spec, target)
    ensure_valid(objects)
    return Plan(spec, target, objects[0], objects[1:])


def start(cluster: Cluster, new: Plan, serving: str | None, tokens: dict[str, str], *, timeout: float,
          progress: Progress = lambda _: None) -> dict[str, Any]:
    """Step 1: create the new Revision beside the serving one (`serving`, a Knative Revision
    name, or None for a first deploy); returns the Service once the new Revision is ready."""
    cluster.apply(secret(new.spec.name, new.target, tokens, new.revision))
    svc = service(new.spec, new.target, pinned(serving) if serving else LATEST)
    ensure_valid([svc])
    cluster.apply(svc)
    return cluster.wait_ready(svc, timeout, progress)


def route(cluster: Cluster, new: Plan, tokens: dict[str, str], *, template: dict[str, Any] | None = None,
          timeout: float, progress: Progress = lambda _: None) -> dict[str, Any]:
    """Step 2: all traffic to the new Revision, its triggers and sources in place, and the
    function's objects it no longer declares pruned. `template` keeps the Service's current
    template (a rollback moves traffic to an older Revision without creating one)."""
    svc = service(new.spec, new.target, pinned(new.revision), template)
    ensure_valid([svc, *new.others])
    cluster.apply(secret(new.spec.name, new.target, tokens, new.revision))
    cluster.apply(svc)
    for obj in new.others:
        cluster.apply(obj)
    keep = {(obj["kind"], obj["metadata"]["name"]) for obj in new.others}
    gone = cluster.prune(new.target.namespace, new.spec.name, keep)
    if gone:
        progress(f"removed {', '.join(gone)}")
    final = cluster.wait_ready(svc, timeout, progress)
    for obj in new.others:
        cluster.wait_ready(obj, timeout, progress)
    return final
