"""A revision onto a cluster in two steps, so that it takes traffic only once it is ready.

1. `start`: the function's Secret (with the new revision's token beside the serving one's)
   and the Service with the new template, its traffic still pinned to the revision serving
   now. Knative creates the new Revision; we wait until the Service is Ready, which needs
   that Revision ready. If it fails, nothing routes to it: the previous revision keeps every
   request, and its pods keep finding their token.
2. `move`: the Service's traffic pinned to the new Revision, waiting until the route says
   so; then `attach`: its Triggers and PingSources applied, the ones it no longer declares
   deleted.

Everything is rendered and validated before the first object is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lepton.spec import FunctionSpec
from lepton_knative.cluster import Cluster
from lepton_knative.manifests import LATEST, Target, pinned, render, secret, secret_name, service
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
        name: str = self.service["spec"]["template"]["metadata"]["name"]
        return name


def plan(spec: FunctionSpec, target: Target) -> Plan:
    objects = render(spec, target)
    ensure_valid(objects)
    return Plan(spec, target, objects[0], objects[1:])


def start(
    cluster: Cluster,
    new: Plan,
    serving: str | list[dict[str, Any]] | None,
    tokens: dict[str, str],
    *,
    timeout: float,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Step 1: create the new Revision beside the serving one (`serving`, a Knative Revision
    name, the `spec.traffic` of a split that stays as it is, or None for a first deploy);
    returns the Service once the new Revision is ready. `tokens` (key -> token) must hold the
    serving revisions' as well as the new one's."""
    cluster.apply(secret(new.spec.name, new.target, tokens, new.revision))
    traffic = (pinned(serving) if isinstance(serving, str) else serving) if serving else LATEST
    svc = service(new.spec, new.target, traffic)
    ensure_valid([svc])
    cluster.apply(svc)
    return cluster.wait_ready(svc, timeout, progress)


def move(
    cluster: Cluster,
    new: Plan,
    revision: str | list[dict[str, Any]],
    tokens: dict[str, str],
    *,
    template: dict[str, Any] | None = None,
    timeout: float,
    progress: Progress = lambda _: None,
) -> dict[str, Any]:
    """Step 2: all traffic to `revision` (the new one, or an older one for a rollback, with
    `template` keeping the Service's newest template as it is), or shared as a `spec.traffic`
    list says (`split`). `tokens` keeps the revisions that served until now beside it: their
    pods may still start while traffic moves."""
    traffic = pinned(revision) if isinstance(revision, str) else revision
    svc = service(new.spec, new.target, traffic, template)
    ensure_valid([svc])
    cluster.apply(secret(new.spec.name, new.target, tokens, new.revision if isinstance(revision, list) else revision))
    cluster.apply(svc)
    return cluster.wait_traffic(svc, timeout, progress)


def attach(cluster: Cluster, new: Plan, *, timeout: float, progress: Progress = lambda _: None) -> list[str]:
    """The revision's Triggers and PingSources in place, and every labelled Trigger,
    PingSource and Secret of the function that it no longer declares deleted (a removed
    `on_cron` stops firing); returns what was deleted."""
    for obj in new.others:
        cluster.apply(obj)
    keep = {(obj["kind"], obj["metadata"]["name"]) for obj in new.others} | {("Secret", secret_name(new.spec.name))}
    gone = cluster.prune(new.target.namespace, new.spec.name, keep, ("Trigger", "PingSource", "Secret"))
    for obj in new.others:
        cluster.wait_ready(obj, timeout, progress)
    return gone
