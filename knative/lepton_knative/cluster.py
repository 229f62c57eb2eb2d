"""Applying objects to a cluster with the `kubernetes` client: server-side apply (idempotent,
create or update in one call), waiting for the Ready condition, and deleting a function's
objects by label. API server errors come back as one line naming the object and the field.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable

from lepton.errors import LeptonError

KINDS = {
    "Service": ("serving.knative.dev", "v1", "services"),
    "Trigger": ("eventing.knative.dev", "v1", "triggers"),
    "PingSource": ("sources.knative.dev", "v1", "pingsources"),
    "Broker": ("eventing.knative.dev", "v1", "brokers"),
}
FIELD_MANAGER = "lepton"


class ClusterError(LeptonError):
    """The API server refused an object, or it did not become Ready."""


def describe_api_error(obj: dict[str, Any], exc: Exception) -> str:
    """An ApiException as 'Kind name: field: message' from the Status the server sent."""
    name = f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}"
    status = getattr(exc, "status", None)
    try:
        body = json.loads(getattr(exc, "body", "") or "{}")
    except ValueError:
        body = {}
    causes = body.get("details", {}).get("causes") or []
    if causes:
        return f"{name}: " + "; ".join(f"{c.get('field', '?')}: {c.get('message', '')}" for c in causes)
    message = body.get("message") or getattr(exc, "reason", None) or str(exc)
    return f"{name}: {message}" + (f" (HTTP {status})" if status else "")


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == kind:
            return cond
    return None


class Cluster:
    def __init__(self, api_client: Any = None, *, kubeconfig: str | None = None, context: str | None = None) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_kube_config(config_file=kubeconfig, context=context)
            except config.ConfigException:
                try:
                    config.load_incluster_config()
                except config.ConfigException as exc:
                    raise ClusterError(f"no cluster to talk to: no kubeconfig and not inside a pod ({exc})") from None
        self.api = client.CustomObjectsApi(api_client)

    def _call(self, obj: dict[str, Any], method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return method(*args, **kwargs)
        except ApiException as exc:
            raise ClusterError(describe_api_error(obj, exc)) from None
        except OSError as exc:
            raise ClusterError(f"cannot reach the Kubernetes API: {exc}") from None

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply: creates the object or updates the fields Lepton owns."""
        group, version, plural = KINDS[obj["kind"]]
        meta = obj["metadata"]
        self._call(obj, self.api.patch_namespaced_custom_object, group, version, meta["namespace"], plural, meta["name"], obj,
                          field_manager=FIELD_MANAGER, force=True, _content_type="application/apply-patch+yaml")

    def get(self, obj: dict[str, Any]) -> dict[str, Any]:
        group, version, plural = KINDS[obj["kind"]]
        meta = obj["metadata"]
        return self._call(obj, self.api.get_namespaced_custom_object, group, version, meta["namespace"], plural, meta["name"])

    def wait_ready(self, obj: dict[str, Any], timeout: float = 300, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        """Poll until the object's Ready condition is True; a False one fails with its message."""
        name = f"{obj['kind']} {obj['metadata']['name']}"
        deadline = time.monotonic() + timeout
        while True:
            current = self.get(obj)
            ready = condition(current)
            generation = current.get("metadata", {}).get("generation")
            observed = current.get("status", {}).get("observedGeneration")
            fresh = generation is None or observed == generation
            if ready and fresh and ready.get("status") == "True":
                return current
            if ready and fresh and ready.get("status") == "False":
                raise ClusterError(f"{name} is not ready: {ready.get('reason', '')}: {ready.get('message', '')}".rstrip(": "))
            progress(f"{name}: {ready.get('reason') or 'waiting'}" if ready else f"{name}: waiting for the controller")
            if time.monotonic() > deadline:
                raise ClusterError(f"{name} not ready after {timeout:g}s")
            time.sleep(0.2)

    def delete_function(self, namespace: str, function: str) -> list[str]:
        """Delete every object labelled with the function; returns what went."""
        gone = []
        for kind, (group, version, plural) in KINDS.items():
            probe = {"kind": kind, "metadata": {"name": function}}
            listed = self._call(probe, self.api.list_namespaced_custom_object, group, version, namespace, plural,
                                label_selector=f"lepton.dev/function={function}")
            for item in listed.get("items", []):
                name = item["metadata"]["name"]
                self._call({"kind": kind, "metadata": {"name": name}}, self.api.delete_namespaced_custom_object,
                           group, version, namespace, plural, name)
                gone.append(f"{kind} {name}")
        return gone
