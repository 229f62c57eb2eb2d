"""Talking to a cluster with the `kubernetes` client: server-side apply (create or update in
one call, fields owned by Lepton's field manager), waiting for Ready, pruning a function's
labelled objects, and reading Revisions, pods and their logs. API server and admission
webhook errors come back as one line naming the object and the field.

Every call here is one the platform's Role in `knative/install/rbac.yaml` grants, and the
Role grants nothing else.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from lepton.errors import LeptonError

KINDS = {
    "Service": ("serving.knative.dev", "v1", "services"),
    "Trigger": ("eventing.knative.dev", "v1", "triggers"),
    "PingSource": ("sources.knative.dev", "v1", "pingsources"),
}
REVISIONS = ("serving.knative.dev", "v1", "revisions")
FIELD_MANAGER = "lepton"
REQUEST_TIMEOUT = 30  # seconds per API call: a hung server must not outlive a deploy's deadline
APPLY = "application/apply-patch+yaml"
# What a function owns, in the order `rm` deletes it: its triggers first, so nothing is left
# pointing at a missing subscriber; the Secret last, so a Service that cannot be deleted
# keeps what its pods need.
OWNED = ("Trigger", "PingSource", "Service", "Secret")


class ClusterError(LeptonError):
    """The API server refused an object, or it did not become Ready."""

    def __init__(self, message: str, api_status: int | None = None) -> None:
        super().__init__(message)
        # The API server's HTTP status, when it answered; not `status`, which is what the
        # platform's API would answer (it never lets a ClusterError through untranslated).
        self.api_status = api_status


def describe_api_error(obj: dict[str, Any], exc: Exception) -> str:
    """An ApiException as 'Kind name: field: message' from the Status the server sent."""
    name = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    status = getattr(exc, "status", None)
    try:
        body = json.loads(getattr(exc, "body", "") or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    causes = body.get("details", {}).get("causes") or []
    if causes:
        return f"{name}: " + "; ".join(f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes)
    message = body.get("message") or getattr(exc, "reason", None) or str(exc)
    return f"{name}: {' '.join(str(message).split())}" + (f" (HTTP {status})" if status else "")


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any] | None:
    conditions: list[dict[str, Any]] = obj.get("status", {}).get("conditions", []) or []
    for cond in conditions:
        if cond.get("type") == kind:
            return cond
    return None


class Cluster:
    def __init__(self, api_client: Any = None, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_kube_config(config_file=kubeconfig, context=context)  # type: ignore[no-untyped-call]  # kubernetes.config is unannotated
            except config.ConfigException:
                try:
                    config.load_incluster_config()  # type: ignore[no-untyped-call]  # kubernetes.config is unannotated
                except config.ConfigException as exc:
                    raise ClusterError(f"no cluster to talk to: no kubeconfig and not inside a pod ({exc})") from None
        self.api = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def _call(self, obj: dict[str, Any], method: Callable[..., Any], *args: Any, missing_ok: bool = False, **kwargs: Any) -> Any:
        """One API call; every way it can fail becomes a one-line ClusterError (an
        unreachable server raises urllib3's errors, which are not OSErrors). With
        `missing_ok`, a 404 returns None."""
        from kubernetes.client.exceptions import ApiException, ApiValueError
        from urllib3.exceptions import HTTPError

        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            if missing_ok and exc.status == 404:
                return None
            raise ClusterError(describe_api_error(obj, exc), exc.status) from None
        except (OSError, HTTPError, ApiValueError) as exc:
            raise ClusterError(f"cannot reach the Kubernetes API: {' '.join(str(exc).split())}") from None

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply as Lepton's field manager: creates the object or updates the
        fields Lepton owns, and drops the ones it owned and no longer sets. `force` takes
        back fields someone changed by hand (`kubectl edit`): the platform is the source
        of truth for what it deploys."""
        meta = obj["metadata"]
        options: dict[str, Any] = {"field_manager": FIELD_MANAGER, "force": True, "_content_type": APPLY}
        if obj["kind"] == "Secret":
            self._call(obj, self.core.patch_namespaced_secret, meta["name"], meta["namespace"], obj, **options)
            return
        group, version, plural = KINDS[obj["kind"]]
        self._call(obj, self.api.patch_namespaced_custom_object, group, version, meta["namespace"], plural, meta["name"], obj, **options)

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        group, version, plural = KINDS[obj["kind"]]
        meta = obj["metadata"]
        found: dict[str, Any] = self._call(
            obj, self.api.get_namespaced_custom_object, group, version, meta["namespace"], plural, meta["name"]
        )
        return found

    def find(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The object, or None if it does not exist."""
        probe = {"kind": kind, "metadata": {"name": name}}
        group, version, plural = REVISIONS if kind == "Revision" else KINDS[kind]
        found: dict[str, Any] | None = self._call(
            probe, self.api.get_namespaced_custom_object, group, version, namespace, plural, name, missing_ok=True
        )
        return found

    def _until(
        self, obj: dict[str, Any], judge: Callable[[dict[str, Any]], str | None], timeout: float, progress: Callable[[str], None], late: str
    ) -> dict[str, Any]:
        """Read `obj` until `judge` (None when done, else what it waits for, or a
        ClusterError when it failed) is satisfied, backing off from 50 ms to 1 s."""
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            current = self.get(obj)
            waiting = judge(current)
            if waiting is None:
                return current
            progress(waiting)
            if time.monotonic() > deadline:
                raise ClusterError(late)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def wait_traffic(self, svc: dict[str, Any], timeout: float = 300, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        """Poll until the Service's route sends traffic as its `spec.traffic` says (shares
        and tags of pinned Revisions). Not `Ready`: that also needs the newest template's
        revision ready, which a rollback away from a failed one never is."""
        name = f"Service {svc['metadata']['name']}"
        wanted = sorted((t["revisionName"], t.get("percent", 0), t.get("tag") or "") for t in svc["spec"]["traffic"])
        what = ", ".join(f"{rev} {pct}%" + (f" (tag {tag})" if tag else "") for rev, pct, tag in wanted)

        def judge(current: dict[str, Any]) -> str | None:
            routes = condition(current, "RoutesReady")
            status = current.get("status", {})
            fresh = status.get("observedGeneration") == current.get("metadata", {}).get("generation")
            serving = sorted((t.get("revisionName"), t.get("percent", 0), t.get("tag") or "") for t in status.get("traffic") or [])
            if fresh and routes and routes.get("status") == "True" and serving == wanted:
                return None
            if fresh and routes and routes.get("status") == "False":
                raise ClusterError(f"{name} cannot route to {what}: {routes.get('reason', '')}: {routes.get('message', '')}".rstrip(": "))
            return f"{name}: moving traffic to {what}"

        return self._until(svc, judge, timeout, progress, f"{name} did not route to {what} within {timeout:g}s")

    def wait_ready(self, obj: dict[str, Any], timeout: float = 300, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        """Poll until the object's Ready condition is True for its latest generation; a
        False one fails with its message."""
        name = f"{obj['kind']} {obj['metadata']['name']}"

        def judge(current: dict[str, Any]) -> str | None:
            ready = condition(current)
            generation = current.get("metadata", {}).get("generation")
            fresh = generation is None or current.get("status", {}).get("observedGeneration") == generation
            if ready and fresh and ready.get("status") == "True":
                return None
            if ready and fresh and ready.get("status") == "False":
                raise ClusterError(f"{name} is not ready: {ready.get('reason', '')}: {ready.get('message', '')}".rstrip(": "))
            return f"{name}: {ready.get('reason') or 'waiting'}" if ready else f"{name}: waiting for the controller"

        return self._until(obj, judge, timeout, progress, f"{name} not ready after {timeout:g}s")

    def _list(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        probe = {"kind": kind, "metadata": {"name": selector}}
        if kind == "Secret":
            result = self._call(probe, self.core.list_namespaced_secret, namespace, label_selector=selector)
            return [{"kind": "Secret", "metadata": {"name": item.metadata.name}} for item in result.items]
        group, version, plural = KINDS[kind]
        items = self._call(probe, self.api.list_namespaced_custom_object, group, version, namespace, plural, label_selector=selector)
        return [{**item, "kind": kind} for item in items.get("items", [])]

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete one object; False when it was already gone."""
        probe = {"kind": kind, "metadata": {"name": name}}
        if kind == "Secret":
            return self._call(probe, self.core.delete_namespaced_secret, name, namespace, missing_ok=True) is not None
        group, version, plural = KINDS[kind]
        return (
            self._call(probe, self.api.delete_namespaced_custom_object, group, version, namespace, plural, name, missing_ok=True)
            is not None
        )

    def _secret_labels(self, namespace: str, name: str) -> dict[str, str] | None:
        """The labels of Secret `name`, or None when there is none: found by listing, since
        the Role grants no `get` on Secrets (a real server filters by the field selector)."""
        probe = {"kind": "Secret", "metadata": {"name": name}}
        result = self._call(probe, self.core.list_namespaced_secret, namespace, field_selector=f"metadata.name={name}")
        return next((item.metadata.labels or {} for item in result.items if item.metadata.name == name), None)

    def _refuse_unmanaged(self, namespace: str, name: str, label: str) -> bool:
        """True when Lepton's Secret `name` exists; ClusterError 409 when a Secret of that
        name exists that Lepton does not manage (managed-by=lepton and `label`): never
        overwrite or delete a user's own."""
        labels = self._secret_labels(namespace, name)
        if labels is not None and not (labels.get("app.kubernetes.io/managed-by") == "lepton" and label in labels):
            raise ClusterError(
                f"Secret {name} already exists in namespace {namespace} and Lepton does not manage it "
                f"(no labels app.kubernetes.io/managed-by=lepton and {label}); delete or rename it first",
                409,
            )
        return labels is not None

    def apply_named_secret(self, obj: dict[str, Any], label: str) -> None:
        """Create or update a Secret Lepton owns by name (not by function), unless someone
        else's has that name."""
        self._refuse_unmanaged(obj["metadata"]["namespace"], obj["metadata"]["name"], label)
        self.apply(obj)

    def delete_named_secret(self, namespace: str, name: str, label: str) -> bool:
        """Delete a Secret Lepton owns by name; False when it was not there."""
        return self._refuse_unmanaged(namespace, name, label) and self.delete("Secret", namespace, name)

    def prune(
        self, namespace: str, function: str, keep: set[tuple[str, str]], kinds: tuple[str, ...] = ("Trigger", "PingSource")
    ) -> list[str]:
        """Delete the function's objects of `kinds` that Lepton manages and that are not in
        `keep` (kind, name): a trigger or schedule the new revision no longer declares stops
        at once. Objects without Lepton's managed-by label (a user's own Secret, labelled
        for `kubectl get -l`) are never touched."""
        gone = []
        selector = f"lepton.dev/function={function},app.kubernetes.io/managed-by=lepton"
        for kind in kinds:
            for item in self._list(kind, namespace, selector):
                name = item["metadata"]["name"]
                if (kind, name) not in keep and self.delete(kind, namespace, name):
                    gone.append(f"{kind} {name}")
        return gone

    def delete_function(self, namespace: str, function: str) -> list[str]:
        """Delete every object labelled with the function; returns what went."""
        return self.prune(namespace, function, set(), OWNED)

    def pods(self, namespace: str, function: str) -> list[dict[str, Any]]:
        """The Service's pods: name, revision, phase, readiness and restarts."""
        probe = {"kind": "Pod", "metadata": {"name": f"serving.knative.dev/service={function}"}}
        result = self._call(probe, self.core.list_namespaced_pod, namespace, label_selector=f"serving.knative.dev/service={function}")
        pods = []
        for pod in result.items:
            statuses = (pod.status.container_statuses or []) if pod.status else []
            pods.append(
                {
                    "id": pod.metadata.name,
                    "revision": (pod.metadata.labels or {}).get("serving.knative.dev/revision"),
                    "state": (pod.status.phase if pod.status else None) or "Unknown",
                    "ready": bool(statuses) and all(s.ready for s in statuses),
                    "restarts": sum(s.restart_count or 0 for s in statuses),
                }
            )
        return sorted(pods, key=lambda p: p["id"])

    def pod_log(self, namespace: str, pod: str, container: str, *, tail: int | None = None, since: int | None = None) -> str:
        """The container's log (its last `tail` lines, or the last `since` seconds), each
        line prefixed with its RFC 3339 timestamp, so polls can be stitched together."""
        probe = {"kind": "Pod", "metadata": {"name": pod}}
        options: dict[str, Any] = {"container": container, "timestamps": True}
        if tail is not None:
            options["tail_lines"] = tail
        if since is not None:
            options["since_seconds"] = since
        return self._call(probe, self.core.read_namespaced_pod_log, pod, namespace, missing_ok=True, **options) or ""
