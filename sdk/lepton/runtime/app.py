"""The ASGI app that serves one function. The same app runs in an embedded replica and in a
Knative container.

Every function answers the platform's probes under `/_lepton/` (`healthz`, `readyz`,
`metrics`). JSON, event, stream and batch handlers are invoked at `/` and keep `/healthz`,
`/readyz`, `/metrics` and `/openapi.json` beside it; a `lepton.Request` handler
(and an ASGI app, `asgi_app.py`) owns every other path.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import json
import logging
import os
import time
import typing
from collections.abc import AsyncIterator, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pydantic_core
from fastapi import FastAPI, Query, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.types import Receive, Scope, Send

from lepton import web
from lepton.functions import Function
from lepton.handlers import ASGI, EVENT, REQUEST, STREAM
from lepton.runtime import events, tracing
from lepton.runtime.batching import Batcher
from lepton.runtime.metrics import Metrics

if TYPE_CHECKING:
    from lepton.runtime.otlp import Exporter, Span

logger = logging.getLogger("lepton.runtime")
COMPONENTS = "#/components/schemas/{model}"
INTERNAL = "/_lepton/"  # the runtime's own routes, whatever the function serves
JOB_ID_HEADER = b"lepton-job-id"
TRACEPARENT_HEADER, TRACESTATE_HEADER = tracing.TRACEPARENT.encode(), tracing.TRACESTATE.encode()
# Methods whose parameters come from the query string; HEAD is GET without the body.
QUERY_METHODS = ("GET", "HEAD")
_END = object()

OnFatal = Callable[[BaseException], None]


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # the caller stopped waiting (timeout, disconnect)
        return
    if exc is None:
        future.set_result(result)
    elif isinstance(exc, StopIteration):  # asyncio futures refuse it
        future.set_exception(RuntimeError(f"handler raised {exc!r}"))
    else:
        future.set_exception(exc)


class InvocationFailed(Exception):
    """Carries the HTTP status and detail of a failed invocation up to `invoke`."""

    def __init__(self, status: int, detail: Any, cause: str, headers: Mapping[str, str] | None = None) -> None:
        self.status, self.detail, self.cause, self.headers = status, detail, cause, headers


def _before_setup(*args: Any, **kwargs: Any) -> Any:
    """The handler until `setup()` has made the real one; requests wait for that, so this is
    never called."""
    raise RuntimeError("the handler was called before setup() made it")


def allowed_methods(methods: tuple[str, ...]) -> tuple[str, ...]:
    """The methods a function answers: its own, and HEAD wherever GET is."""
    return (*methods, "HEAD") if "GET" in methods else methods


class FunctionRuntime:
    """Calls one handler with the request's input, within its timeout and concurrency."""

    def __init__(self, fn: Function, on_fatal: OnFatal | None = None) -> None:
        self.fn = fn
        self.spec = fn.spec
        self.sig = fn.signature
        self.metrics = Metrics(fn.name)
        self.on_fatal = on_fatal
        self.ready = asyncio.Event()
        self.settled = asyncio.Event()  # setup() is over, well or not
        self.failed: BaseException | None = None
        self.handler: Callable[..., Any] = _before_setup
        self.spans: Exporter | None = None  # set in the replica, never in a template process that forks it
        self.handler_is_async = self.sig.is_async
        self.allowed = allowed_methods(self.spec.methods)
        self.every_path = self.sig.kind == REQUEST
        # Parameters that repeat in a query string (`?x=1&x=2`) when read from one.
        self.list_params = {
            name
            for name, field in (self.sig.input_model.model_fields.items() if self.sig.input_model else ())
            if typing.get_origin(field.annotation) in (list, tuple, set, frozenset)
        }
        self.threads = ThreadPoolExecutor(
            max(self.spec.concurrency, self.spec.batch.max_size if self.spec.batch else 0, 40), thread_name_prefix="handler"
        )
        self.slots = asyncio.Semaphore(self.spec.concurrency) if self.spec.concurrency and not self.spec.batch else None
        self.batcher = (
            Batcher(self._run_batch, self.spec.batch.max_size, self.spec.batch.max_wait_ms, self.metrics.batch_size.labels(fn.name).observe)
            if self.spec.batch
            else None
        )

    # -- lifecycle -----------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        self.spans = tracing.exporter({"service.name": self.fn.name, "lepton.replica": os.environ.get("LEPTON_REPLICA", "")})
        setup = asyncio.create_task(self.setup())
        yield
        setup.cancel()
        await self.shutdown()
        if self.spans is not None:
            self.spans.close()

    async def setup(self) -> None:
        """Prepare the handler (e.g. run a class's `setup()`); the replica is ready only after this."""
        try:
            self.handler = await self.prepare()
        except Exception as exc:
            self.failed = exc
            self.settled.set()
            logger.exception("[%s] setup of %r failed; the replica will exit", os.getpid(), self.fn.name)
            if self.on_fatal:
                self.on_fatal(exc)
            return
        self.ready.set()
        self.settled.set()
        logger.info("[%s] function %r is ready", os.getpid(), self.fn.name)

    async def prepare(self) -> Callable[..., Any]:
        """The handler: the function itself, or an instance of the class after its `setup()`."""
        if not self.fn.is_class:
            handler: Callable[..., Any] = self.fn.obj
            return handler
        instance: Callable[..., Any] = await self._in_thread(self.fn.obj)
        hook = getattr(instance, "setup", None)
        if hook is not None:
            if inspect.iscoroutinefunction(hook):
                await hook()
            else:
                await self._in_thread(hook)
        return instance

    async def shutdown(self) -> None:
        """Runs once the server has drained; handlers have nothing to undo."""

    # -- request path --------------------------------------------------------------------

    def owns(self, scope: Scope) -> bool:
        """Whether a request is the function's: `/`, or for a request handler every path
        outside the runtime's own."""
        if scope["type"] != "http":
            return False
        path = scope["path"]
        return path == "/" or (self.every_path and not path.startswith(INTERNAL))

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        traceparent = tracestate = None
        for key, value in scope["headers"]:
            if key == JOB_ID_HEADER:  # an async job's attempt: lepton.job_id() tells the handler
                web.JOB_ID.set(value.decode("latin-1"))
            elif key == TRACEPARENT_HEADER:
                traceparent = value.decode("latin-1")
            elif key == TRACESTATE_HEADER:
                tracestate = value.decode("latin-1")
        request = Request(scope, receive)
        caller = tracing.parse(traceparent, tracestate)
        if caller is None and self.sig.kind == EVENT:
            caller = await self._event_trace(request)
        span = self.enter_trace(caller)
        status = 500
        try:
            response = await self.invoke(request)
            status = response.status_code
            await response(scope, receive, send)
        finally:
            self.leave_trace(span, status)

    def enter_trace(self, caller: tracing.TraceParent | None) -> Span | None:
        """Run the request in a span of its own under the caller's (or in a new trace), and
        return that span when this replica exports spans."""
        if self.spans is None:
            tracing.enter(caller.child() if caller is not None else tracing.new())
            return None
        span, ours = self.spans.start(f"run {self.fn.name}", caller, "server", {"lepton.function": self.fn.name})
        tracing.enter(ours)
        return span

    def leave_trace(self, span: Span | None, status: int) -> None:
        """End the span `enter_trace` started, if it started one, with the answer's status."""
        if span is not None and self.spans is not None:
            self.spans.end(span, status)

    @staticmethod
    async def _event_trace(request: Request) -> tracing.TraceParent | None:
        """A CloudEvent that came with no `traceparent` header continues the trace of its
        distributed-tracing extension: `ce-traceparent` in binary mode, an attribute in
        structured mode."""
        headers = request.headers
        if "ce-specversion" in headers:
            return tracing.parse(headers.get("ce-traceparent"), headers.get("ce-tracestate"))
        if not headers.get("content-type", "").startswith(events.STRUCTURED):
            return None
        try:
            attributes = json.loads(await request.body())
        except ValueError:
            return None  # answered 400 when the event is parsed
        if not isinstance(attributes, dict):
            return None
        return tracing.parse(attributes.get(tracing.TRACEPARENT), attributes.get(tracing.TRACESTATE))

    async def invoke(self, request: Request) -> Response:
        started = time.perf_counter()
        self.metrics.started()
        status = 500
        try:
            response = await self._invoke(request)
            status = response.status_code
            return response
        except InvocationFailed as exc:
            status = exc.status
            self.metrics.error(exc.cause)
            return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers)
        finally:
            self.metrics.finished(status, time.perf_counter() - started)

    async def _invoke(self, request: Request) -> Response:
        method = request.method
        if method not in self.allowed:
            allowed = ", ".join(self.allowed)
            raise InvocationFailed(405, f"function {self.fn.name!r} allows {allowed}; not {method}", "method", {"allow": allowed})
        body = await request.body()
        try:
            async with asyncio.timeout(self.spec.timeout):
                if not self.ready.is_set():
                    await self._wait_ready()
                if self.sig.kind == REQUEST:
                    return await self._invoke_request(request, body)
                if self.sig.kind == EVENT:
                    return await self._invoke_event(request, body)
                validated = self._validate_query(request) if method in QUERY_METHODS else self._validate(body)
                if self.batcher is not None:  # a batch handler
                    result = await self._guard(self.batcher.submit(validated))
                    return self._json(result)
                if self.sig.kind == STREAM:
                    return await self._invoke_stream(request, validated)
                result = await self._guard(self._call(**self.sig.arguments(validated)))
                return self._json(result)
        except TimeoutError:
            raise InvocationFailed(504, f"function {self.fn.name!r} timed out after {self.spec.timeout:g}s", "timeout") from None

    async def _wait_ready(self) -> None:
        if self.failed is not None:
            raise InvocationFailed(503, f"function {self.fn.name!r} failed in setup(): {self.failed!r}", "setup")
        await self.ready.wait()

    def _validate(self, body: bytes) -> BaseModel:
        model = self.sig.input_model
        assert model is not None  # json, stream and batch handlers have one
        try:
            return model.model_validate_json(body or b"{}")
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            if any(e["type"] == "json_invalid" for e in errors):
                raise InvocationFailed(400, f"request body is not valid JSON: {errors[0]['msg']}", "input") from None
            if any(e["type"] in ("model_type", "dict_type") and not e["loc"] for e in errors):
                raise InvocationFailed(422, 'request body must be a JSON object of the parameters, e.g. {"a": 1}', "input") from None
            raise InvocationFailed(422, _field_errors("body", errors), "input") from None

    def _validate_query(self, request: Request) -> BaseModel:
        """The parameters from the query string, converted as pydantic's lax mode does ("1" -> 1)."""
        query = request.query_params
        params = {key: query.getlist(key) if key in self.list_params else query[key] for key in query}
        model = self.sig.input_model
        assert model is not None  # json, stream and batch handlers have one
        try:
            return model.model_validate(params)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise InvocationFailed(422, _field_errors("query", errors), "input") from None

    async def _guard(self, awaitable: Any) -> Any:
        """Await the handler, mapping its exceptions to HTTP errors (never a dead server)."""
        try:
            if self.slots is None:
                return await awaitable
            async with self.slots:
                return await awaitable
        except HTTPException as exc:
            raise InvocationFailed(exc.status_code, exc.detail, "handler", exc.headers) from None
        except Exception as exc:
            logger.exception("[%s] function %r raised", os.getpid(), self.fn.name)
            raise InvocationFailed(500, f"{type(exc).__name__}: {exc}", "handler") from None

    async def _call(self, *args: Any, **kwargs: Any) -> Any:
        if self.handler_is_async:
            return await self.handler(*args, **kwargs)
        return await self._in_thread(functools.partial(self.handler, *args, **kwargs))

    def _in_thread(self, call: Callable[[], Any]) -> asyncio.Future[Any]:
        """Run blocking user code off the event loop, with the caller's context variables. A
        caller that times out stops waiting; the thread finishes on its own. The thread settles
        an asyncio future itself: about 5 us of CPU less per call than `run_in_executor`, whose
        two chained futures cost more than the call of a small handler."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        context = contextvars.copy_context()

        def run() -> None:
            if future.cancelled():  # its caller timed out while the call waited for a thread
                return
            try:
                result = context.run(call)
            except BaseException as exc:
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

        self.threads.submit(run)
        return future

    async def _run_batch(self, items: list[BaseModel]) -> Any:
        columns = {name: [getattr(item, name) for item in items] for name in type(items[0]).model_fields}
        return await self._call(**columns)

    def _json(self, result: Any) -> Response:
        try:
            if self.sig.output_adapter is not None:
                payload = self.sig.output_adapter.dump_json(result)
            else:
                payload = pydantic_core.to_json(result)
        except (pydantic_core.PydanticSerializationError, ValueError, TypeError) as exc:
            logger.error("[%s] function %r returned a value that is not JSON: %s", os.getpid(), self.fn.name, exc)
            raise InvocationFailed(500, f"return value is not JSON serialisable: {exc}", "output") from None
        return Response(payload, media_type="application/json")

    async def _invoke_request(self, request: Request, body: bytes) -> Response:
        form, files = await self._read_form(request)
        call = web.Request(request.method, request.scope["path"], request.query_params, request.headers, body, form, files)
        result = await self._guard(self._call(call))
        if isinstance(result, Response):
            return result
        if isinstance(result, str):
            return PlainTextResponse(result)
        if isinstance(result, (bytes, bytearray, memoryview)):
            return Response(bytes(result), media_type="application/octet-stream")
        return self._json(result)

    async def _read_form(self, request: Request) -> tuple[dict[str, str], dict[str, web.UploadedFile]]:
        """Fields and files of an urlencoded or multipart body (Starlette's parser); none otherwise."""
        fields: dict[str, str] = {}
        files: dict[str, web.UploadedFile] = {}
        try:
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, UploadFile):
                        files[key] = web.UploadedFile(value.filename, value.content_type, await value.read())
                    else:
                        fields[key] = value
        except MultiPartException as exc:
            raise InvocationFailed(400, f"bad multipart body: {exc.message}", "input") from None
        return fields, files

    async def _invoke_event(self, request: Request, body: bytes) -> Response:
        try:
            event = events.parse(request.headers, body)
        except events.BadEvent as exc:
            raise InvocationFailed(400, str(exc), "input") from None
        result = await self._guard(self._call(event))
        if result is None:
            return Response(status_code=204)
        if isinstance(result, events.EVENT_CLASSES):
            result = events.traced(result)
            structured = "ce-specversion" not in request.headers
            headers, payload = events.to_structured(result) if structured else events.to_binary(result)
            return Response(payload, headers=headers)
        return self._json(result)

    async def _invoke_stream(self, request: Request, validated: BaseModel) -> Response:
        kwargs = self.sig.arguments(validated)
        if self.handler_is_async:
            agen = self.handler(**kwargs)
            next_item: Callable[[], Any] = functools.partial(anext, agen, _END)
        else:
            gen = await self._guard(self._call(**kwargs))
            next_item = functools.partial(self._in_thread, functools.partial(next, gen, _END))
        first = await self._guard(next_item())
        sse = "text/event-stream" in request.headers.get("accept", "")
        if sse:
            media = "text/event-stream"
        elif isinstance(first, (str, bytes)):
            media = "text/plain; charset=utf-8"
        else:
            media = "application/x-ndjson"
        return StreamingResponse(self._chunks(first, next_item, sse), media_type=media)

    async def _chunks(self, first: Any, next_item: Callable[[], Any], sse: bool) -> AsyncIterator[bytes]:
        item = first
        try:
            while item is not _END:
                yield self._encode_chunk(item, sse)
                item = await next_item()
        except Exception as exc:
            logger.exception("[%s] stream of %r failed midway", os.getpid(), self.fn.name)
            self.metrics.error("handler")
            if sse:
                yield b"event: error\ndata: " + pydantic_core.to_json(f"{type(exc).__name__}: {exc}") + b"\n\n"
            else:
                raise

    def _encode_chunk(self, item: Any, sse: bool) -> bytes:
        if isinstance(item, bytes) and not sse:
            return item
        if isinstance(item, str):
            text = item.encode()
        elif self.sig.output_adapter is not None:
            text = self.sig.output_adapter.dump_json(item)
        else:
            text = pydantic_core.to_json(item)
        if sse:
            return b"data: " + text.replace(b"\n", b"\ndata: ") + b"\n\n"
        return text if isinstance(item, str) else text + b"\n"

    # -- probes --------------------------------------------------------------------------

    async def healthz(self) -> Response:
        return JSONResponse({"status": "ok", "function": self.fn.name})

    async def readyz(
        self, wait: float = Query(0, ge=0, le=60, description="hold the answer up to this long until setup() is over")
    ) -> Response:
        """200 once setup() is done, else 503; `?wait=S` holds the answer until then (up to S
        seconds), so the platform learns of a new replica's readiness with one request
        instead of polling it."""
        if wait and not self.settled.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self.settled.wait()
        if self.ready.is_set():
            return JSONResponse({"status": "ready", "function": self.fn.name})
        state = "failed" if self.failed else "starting"
        return JSONResponse({"status": state, "function": self.fn.name}, status_code=503)

    async def metrics_endpoint(self) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")


class RuntimeAPI(FastAPI):
    """Requests the function owns (`POST /` above all) go straight to the runtime, past
    Starlette's routing and middleware stack, which cost more than the rest of a small call
    (tests/bench/batching.py); probes, metrics and the OpenAPI document take the usual way."""

    runtime: FunctionRuntime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.runtime.owns(scope):
            await self.runtime.serve(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_app(fn: Function, *, on_fatal: OnFatal | None = None) -> FastAPI:
    """Build the ASGI app for `fn`. `on_fatal` is called if `setup()` fails (to exit)."""
    if fn.signature.kind == ASGI:
        from lepton.runtime.asgi_app import AsgiRuntime

        runtime: FunctionRuntime = AsgiRuntime(fn, on_fatal)
    else:
        runtime = FunctionRuntime(fn, on_fatal)
    classic = fn.signature.kind not in (REQUEST, ASGI)
    app = RuntimeAPI(
        title=fn.name,
        description=(fn.__doc__ or "").strip(),
        version="1",
        lifespan=runtime.lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if classic else None,
    )
    app.runtime = runtime
    probes = {"healthz": runtime.healthz, "readyz": runtime.readyz, "metrics": runtime.metrics_endpoint}
    for name, probe in probes.items():
        app.add_api_route(f"{INTERNAL}{name}", probe, methods=["GET"], include_in_schema=False)
        if classic:
            app.add_api_route(f"/{name}", probe, methods=["GET"], include_in_schema=False)
    if classic:
        app.openapi = functools.partial(_openapi, app, fn)  # type: ignore[method-assign]
    return app


def _field_errors(where: str, errors: list[Any]) -> list[dict[str, Any]]:
    """pydantic's errors as FastAPI's 422 `detail`: each names its field, in the body or query."""
    return [{"loc": [where, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in errors]


def _openapi(app: FastAPI, fn: Function) -> dict[str, Any]:
    """OpenAPI with one operation per allowed method of `/`, with the handler's real input
    and output schemas."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    sig = fn.signature
    if sig.kind == EVENT:
        operations = {
            "post": {
                "requestBody": {
                    "description": "A CloudEvent in binary (ce-* headers) or structured mode.",
                    "content": {events.STRUCTURED: {"schema": {"type": "object"}}, "*/*": {"schema": {}}},
                },
                "responses": {
                    "200": {"description": "A reply CloudEvent, or the handler's JSON result."},
                    "204": {"description": "Handled; no reply."},
                },
            }
        }
    else:
        assert sig.input_model is not None  # json, stream and batch handlers have one
        input_schema = sig.input_model.model_json_schema(ref_template=COMPONENTS)
        required = set(input_schema.get("required", ()))
        query = [
            {"name": name, "in": "query", "required": name in required, "schema": field}
            for name, field in input_schema.get("properties", {}).items()
        ]
        body = _component(components, input_schema)
        output_schema = _component(components, sig.output_adapter.json_schema(ref_template=COMPONENTS) if sig.output_adapter else {})
        media = {STREAM: "application/x-ndjson"}.get(sig.kind, "application/json")
        responses = {
            "200": {"description": "The handler's result.", "content": {media: {"schema": output_schema}}},
            "422": {"description": "Invalid input; `detail` names each bad field."},
            "500": {"description": "The handler raised; `detail` has the exception."},
            "504": {"description": "The handler did not finish within the function's timeout."},
        }
        operations = {
            method.lower(): {"parameters": query}
            if method == "GET"
            else {"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
            for method in fn.spec.methods
        }
        for operation in operations.values():
            operation["responses"] = responses
    for method, operation in operations.items():
        operation.update(summary=f"Invoke {fn.name}", operationId=f"invoke_{method}")
    schema.setdefault("paths", {})["/"] = operations
    app.openapi_schema = schema
    return schema


def _component(components: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Move a named object schema and its definitions into components; return a $ref to it."""
    components.update(schema.pop("$defs", {}))
    if schema.get("type") == "object" and "title" in schema:
        components[schema["title"]] = schema
        return {"$ref": COMPONENTS.format(model=schema["title"])}
    return schema
