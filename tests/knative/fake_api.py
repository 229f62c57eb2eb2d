"""A small in-test fake of the Kubernetes API for Knative's custom resources.

It serves the paths the `kubernetes` client uses for custom objects, checks a bearer token,
validates applied objects against the Knative CRD schemas as an API server would (422 with
field causes), keeps them in memory, and plays the controller: an object turns Ready after
a few reads, or fails with the message a test asked for.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
import yaml
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from lepton_knative.schemas import schema_errors

TOKEN = "fake-cluster-token"
KINDS = {"services": "Service", "triggers": "Trigger", "pingsources": "PingSource", "brokers": "Broker"}


def status_error(code: int, reason: str, message: str, causes: list[dict[str, str]] | None = None) -> JSONResponse:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code}
    if causes:
        body["details"] = {"causes": causes}
    return JSONResponse(body, status_code=code)


@dataclass
class FakeCluster:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    fail: dict[str, str] = field(default_factory=dict)       # name -> message of a failed Ready condition
    reject: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (field, message) at apply
    reads_until_ready: int = 2
    reads: dict[tuple[str, str, str], int] = field(default_factory=dict)
    applies: int = 0
    urls: dict[str, str] = field(default_factory=dict)        # name -> status.url to report
    broker_events: list[dict[str, Any]] = field(default_factory=list)  # what POST /broker received

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def authenticate(request: Request, call_next: Any) -> Response:
            if request.url.path != "/broker" and request.headers.get("authorization") != f"Bearer {TOKEN}":
                return status_error(401, "Unauthorized", "Unauthorized")
            return await call_next(request)

        @app.post("/broker")
        async def broker_ingress(request: Request) -> Response:
            """Stands in for the Knative Broker's ingress: records structured events."""
            self.broker_events.append(yaml.safe_load(await request.body()))
            return Response(status_code=202)

        @app.get("/apis/{group}/{version}/namespaces/{ns}/{plural}")
        async def list_objects(group: str, version: str, ns: str, plural: str, labelSelector: str = "") -> dict[str, Any]:
            key, _, value = labelSelector.partition("=")
            items = [o for (p, n, _), o in self.objects.items() if p == plural and n == ns
                     and (not key or o["metadata"].get("labels", {}).get(key) == value)]
            return {"apiVersion": f"{group}/{version}", "kind": f"{KINDS[plural]}List", "items": items}

        @app.get("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}")
        async def get_object(group: str, version: str, ns: str, plural: str, name: str) -> Response:
            key = (plural, ns, name)
            if key not in self.objects:
                return status_error(404, "NotFound", f'{plural}.{group} "{name}" not found')
            self.reads[key] = self.reads.get(key, 0) + 1
            self._reconcile(key)
            return JSONResponse(self.objects[key])

        @app.patch("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}")
        async def apply(group: str, version: str, ns: str, plural: str, name: str, request: Request,
                        fieldManager: str = "", force: bool = False) -> Response:
            if request.headers.get("content-type") != "application/apply-patch+yaml":
                return status_error(415, "UnsupportedMediaType", "only server-side apply is supported here")
            obj = yaml.safe_load(await request.body())
            if not fieldManager:
                return status_error(422, "Invalid", "fieldManager is required for apply patch")
            errors = list(schema_errors(obj))
            if name in self.reject:
                errors.append(": ".join(self.reject[name]))
            if errors:
                causes = [{"field": e.split(": ", 1)[0], "message": e.split(": ", 1)[1]} for e in errors]
                return status_error(422, "Invalid", f'{KINDS[plural]}.{group} "{name}" is invalid', causes)
            self.applies += 1
            key = (plural, ns, name)
            old = self.objects.get(key)
            generation = (old["metadata"]["generation"] if old else 0) + (old is None or old.get("spec") != obj.get("spec"))
            stored = copy.deepcopy(obj)
            stored["metadata"].update(generation=generation, uid=f"uid-{name}", resourceVersion=str(time.monotonic_ns()))
            stored["status"] = old["status"] if old and old.get("spec") == obj.get("spec") else {
                "observedGeneration": generation - 1, "conditions": [{"type": "Ready", "status": "Unknown", "reason": "Deploying"}]}
            self.objects[key] = stored
            self.reads[key] = 0
            return JSONResponse(stored, status_code=201 if old is None else 200)

        @app.delete("/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}")
        async def delete(group: str, version: str, ns: str, plural: str, name: str) -> Response:
            if self.objects.pop((plural, ns, name), None) is None:
                return status_error(404, "NotFound", f'{plural}.{group} "{name}" not found')
            return JSONResponse({"kind": "Status", "status": "Success"})

        return app

    def _reconcile(self, key: tuple[str, str, str]) -> None:
        obj = self.objects[key]
        plural, ns, name = key
        if self.reads[key] < self.reads_until_ready:
            return
        status = obj["status"]
        status["observedGeneration"] = obj["metadata"]["generation"]
        if name in self.fail:
            status["conditions"] = [{"type": "Ready", "status": "False", "reason": "RevisionFailed", "message": self.fail[name]}]
            return
        status["conditions"] = [{"type": "Ready", "status": "True"}]
        if plural == "services":
            status["url"] = self.urls.get(name, f"http://{name}.{ns}.example.com")
            status["latestReadyRevisionName"] = obj["spec"]["template"]["metadata"]["name"]


class FakeServer:
    """Serves a FakeCluster on a loopback port from a background thread."""

    def __init__(self, cluster: FakeCluster, port: int) -> None:
        self.cluster = cluster
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(cluster.app(), host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    def kubeconfig(self, path: Any) -> Any:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": TOKEN}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "tester", "namespace": "default"}}],
        }))
        return path
