"""Web endpoints over real HTTP: `lepton.Request` handlers, GET for JSON handlers, 405s, a
FastAPI app deployed with `@lepton.asgi` (lifespan, prefix, WebSocket) and `lepton.job_id()`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient
from websockets.sync.client import unix_connect

import lepton
from lepton import SpecError
from lepton.runtime.app import build_app
from tests.helpers import FUNCTIONS, ROOT, Process, free_port

WEB = FUNCTIONS / "web"


def launch(args: list[str], log: Path, url: str, env: dict[str, str] | None = None) -> Process:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lepton.runtime", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
    return Process(proc, url, log)


def listening(abstract_name: str) -> bool:
    """Whether a Unix socket of that name accepts connections (the flag __SO_ACCEPTCON)."""
    return any(
        line.split()[3] == "00010000" and line.endswith(" " + abstract_name) for line in Path("/proc/net/unix").read_text().splitlines()[1:]
    )


def wait_ready(process: Process, client: httpx.Client, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    socket_name = process.proc.args[-1] if "--uds" in process.proc.args else None
    while time.monotonic() < deadline:
        assert process.proc.poll() is None, process.output()
        if socket_name and not listening(socket_name):
            time.sleep(0.05)  # httpx would leak the socket of a refused connect
            continue
        try:
            if client.get("/_lepton/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"not ready in {timeout}s:\n{process.output()}")


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Process, httpx.Client]]]:
    """The request handler and the JSON handlers on TCP, as `lepton run` serves them; the
    FastAPI app on an abstract socket that checks its peer, as a platform replica listens.
    All start together."""
    folder = tmp_path_factory.mktemp("web")
    socket_name = f"lepton-test-{uuid.uuid4().hex[:8]}"
    started: dict[str, tuple[Process, httpx.Client]] = {}
    for target in ("main.py:site", "main.py:add"):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started[target.split(":")[1]] = (
            launch([str(WEB / target), "--port", str(port)], folder / f"{port}.log", url),
            httpx.Client(base_url=url, timeout=10),
        )
    shop = launch(
        [str(WEB / "shop.py"), "--uds", f"@{socket_name}"],
        folder / "shop.log",
        "http://replica",
        env={"LEPTON_PLATFORM_UID": str(os.getuid())},
    )
    started["shop"] = (shop, httpx.Client(base_url="http://replica", timeout=10, transport=httpx.HTTPTransport(uds="\0" + socket_name)))
    try:
        for process, client in started.values():
            wait_ready(process, client)
        yield started
    finally:
        for process, client in started.values():
            client.close()
            process.stop()


def test_request_handler_sees_method_sub_path_query_and_headers(servers):
    _, http = servers["site"]
    got = http.get("/a/b", params={"q": "cats", "n": "2"}, headers={"x-agent": "tests"}).json()
    assert got == {"method": "GET", "path": "/a/b", "query": {"q": "cats", "n": "2"}, "agent": "tests", "form": {}, "files": {}, "text": ""}
    assert http.delete("/").json()["method"] == "DELETE"
    assert http.post("/echo", json={"deep": [1, 2]}).json() == {"deep": [1, 2]}
    bad_json = http.post("/echo", content=b"{nope")
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["detail"]


def test_request_handler_reads_forms_and_file_uploads(servers):
    _, http = servers["site"]
    png = b"\x89PNG\r\n" + bytes(range(200))
    got = http.post("/upload", data={"caption": "a digit"}, files={"image": ("seven.png", png, "image/png")}).json()
    assert got["form"] == {"caption": "a digit"}
    assert got["files"] == {"image": ["seven.png", "image/png", len(png), "\x89PNG"]}
    urlencoded = http.post("/", data={"name": "Zoë"}).json()
    assert urlencoded["form"] == {"name": "Zoë"} and urlencoded["text"] == "name=Zo%C3%AB"
    broken = http.post("/", content=b"--x\r\nno headers", headers={"content-type": "multipart/form-data"})
    assert broken.status_code == 400 and broken.json()["detail"] == "bad multipart body: Missing boundary in multipart."


def test_each_kind_of_return_value(servers):
    _, http = servers["site"]
    text = http.get("/text")
    assert (text.text, text.headers["content-type"]) == ("plain words", "text/plain; charset=utf-8")
    raw = http.get("/bytes")
    assert (raw.content, raw.headers["content-type"]) == (b"\x89PNG", "application/octet-stream")
    assert http.get("/nothing").json() is None
    created = http.post("/created")
    assert (created.status_code, created.text, created.headers["location"]) == (201, "made", "/things/1")
    with http.stream("GET", "/stream") as streamed:
        assert b"".join(streamed.iter_raw()) == b"one two"
    teapot = http.get("/teapot")
    assert (teapot.status_code, teapot.json()) == (418, {"detail": "short and stout"})
    broken = http.get("/broken")
    assert (broken.status_code, broken.json()) == (500, {"detail": "ValueError: no such thing"})
    head = http.head("/text")
    assert head.status_code == 200 and head.content == b""


def test_methods_a_function_does_not_allow_are_405_with_allow(servers):
    _, site = servers["site"]
    refused = site.put("/anything", content=b"x")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST, DELETE, HEAD"
    assert refused.json() == {"detail": "function 'site' allows GET, POST, DELETE, HEAD; not PUT"}
    _, add = servers["add"]
    assert add.delete("/").headers["allow"] == "GET, POST, HEAD"


def test_json_handler_takes_get_with_query_parameters(servers):
    _, http = servers["add"]
    assert http.get("/", params={"a": "1", "b": "2"}).json() == {"sum": 3, "tags": [], "job": None}
    assert http.get("/", params=[("a", "5"), ("tags", "x"), ("tags", "y")]).json()["tags"] == ["x", "y"]
    assert http.post("/", json={"a": 1, "b": 2}).json()["sum"] == 3
    bad = http.get("/", params={"a": "one"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "a"]
    assert http.get("/healthz").status_code == 200 and http.get("/_lepton/metrics").status_code == 200
    operations = http.get("/openapi.json").json()["paths"]["/"]
    assert set(operations) == {"get", "post"}
    assert [p["name"] for p in operations["get"]["parameters"]] == ["a", "b", "tags"]


def test_job_id_reaches_a_sync_handler(servers):
    _, http = servers["add"]
    attempt = {"lepton-job-id": "job-42", "lepton-job-attempt": "2"}
    assert http.post("/", json={"a": 1}, headers=attempt).json()["job"] == "job-42"
    assert http.post("/", json={"a": 1}).json()["job"] is None  # nothing left over from the last call


def test_fastapi_app_routes_lifespan_and_own_openapi(servers):
    _, http = servers["shop"]
    assert http.get("/").json() == {"greeting": "welcome", "docs": "/openapi.json"}
    assert http.get("/items/7", params={"currency": "USD"}).json() == {"id": 7, "currency": "USD"}
    assert http.post("/items", json={"name": "tea", "price": 2.5}).json() == {"created": "tea", "cents": 250}
    assert http.post("/items", json={"name": "tea"}).status_code == 422
    assert http.get("/_lepton/readyz").json() == {"status": "ready", "function": "shop"}
    assert "/items/{item_id}" in http.get("/openapi.json").json()["paths"]
    assert http.get("/healthz").status_code == 404  # the app's paths, all of them
    metrics = http.get("/_lepton/metrics").text
    assert 'lepton_requests_total{code="200",function="shop"}' in metrics


def test_fastapi_app_behind_the_platform_prefix(servers):
    _, http = servers["shop"]
    prefix = {"x-forwarded-prefix": "/fn/shop"}
    assert http.get("/", headers=prefix).json()["docs"] == "/fn/shop/openapi.json"
    assert "url: '/fn/shop/openapi.json'" in http.get("/docs", headers=prefix).text
    assert http.get("/items/3", headers=prefix).json() == {"id": 3, "currency": "EUR"}


def test_websocket_echo_through_the_peer_checked_socket(servers):
    process, _ = servers["shop"]
    socket_name = process.proc.args[-1].removeprefix("@")
    with unix_connect("\0" + socket_name, "ws://replica/ws") as socket:
        for text in ("hello", "again"):
            socket.send(text)
            assert socket.recv(timeout=5) == f"echo: {text}"


# -- in process: the lifespan cases and the decorator ------------------------------------


async def bare_app(scope, receive, send):
    """An ASGI app without lifespan support, like many hand-written ones."""
    assert scope["type"] == "http", "lifespan not supported"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": scope["path"].encode()})


def test_an_app_object_without_lifespan_serves():
    fn = lepton.asgi(bare_app, name="bare")
    assert fn() is bare_app
    with TestClient(build_app(fn)) as client:
        assert client.get("/x/y").text == "/x/y"
        assert client.get("/_lepton/readyz").status_code == 200


def test_the_app_lifespan_brackets_serving():
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app):
        events.append("startup")
        yield
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)
    app.get("/")(lambda: events.copy())
    with TestClient(build_app(lepton.asgi(lambda: app, name="bracketed"))) as client:
        assert client.get("/").json() == ["startup"]
    assert events == ["startup", "shutdown"]


def test_a_failing_app_startup_fails_the_replica():
    @asynccontextmanager
    async def lifespan(app):
        raise RuntimeError("no database")
        yield

    failures: list[BaseException] = []
    fn = lepton.asgi(lambda: FastAPI(lifespan=lifespan), name="broken")
    with TestClient(build_app(fn, on_fatal=failures.append)) as client:
        while client.get("/_lepton/readyz").json()["status"] == "starting":
            time.sleep(0.01)
        response = client.get("/")
        assert response.status_code == 503 and "failed in setup()" in response.json()["detail"]
    assert "no database" in str(failures[0])


def test_methods_are_normalised_and_checked():
    @lepton.function(methods=["get", "post", "GET"])
    def f(a: int) -> int:
        return a

    assert f.spec.methods == ("GET", "POST")
    assert lepton.function(methods="PUT")(target).spec.methods == ("PUT",)
    for methods, message in [(["HEAD"], "HEAD is implied by GET"), (["FETCH"], "'FETCH' is not a method"), ([], "at least one")]:
        with pytest.raises(SpecError, match=message):
            lepton.function(methods=methods)(target)


def test_event_and_batch_handlers_take_post_only():
    def on_event(event: lepton.CloudEvent) -> None: ...

    def batched(xs: list[int]) -> list[int]:
        return xs

    with pytest.raises(SpecError, match="a CloudEvent handler allows POST only"):
        lepton.function(methods=["GET", "POST"])(on_event)
    with pytest.raises(SpecError, match="a batch handler allows POST only"):
        lepton.function(methods=["GET"], batch=lepton.Batch())(batched)


def test_request_handler_signature_is_checked():
    def two(request: lepton.Request, extra: int) -> None: ...

    def streaming(request: lepton.Request):
        yield b""

    with pytest.raises(SpecError, match="exactly one parameter"):
        lepton.function(two)
    with pytest.raises(SpecError, match="cannot be batched or yield"):
        lepton.function(streaming)


def test_retries_and_their_backoff():
    assert lepton.function(retries=3)(target).spec.retries == lepton.Retries(max_retries=3)
    assert lepton.function(target).spec.retries.max_retries == 0
    exponential = lepton.Retries(max_retries=5, delay=1, max_delay=5)
    assert [exponential.backoff_seconds(n) for n in (1, 2, 3, 4)] == [1, 2, 4, 5]
    assert lepton.Retries(backoff="linear", delay=2).backoff_seconds(3) == 6
    spec = lepton.function(retries=lepton.Retries(max_retries=2, backoff="linear"))(target).spec
    assert lepton.FunctionSpec.model_validate_json(spec.model_dump_json()) == spec
    for options, message in [
        ({"max_retries": 101}, "max_retries"),
        ({"delay": 0}, "delay"),
        ({"delay": 10, "max_delay": 5}, "max_delay (5) must not be below delay (10)"),
    ]:
        with pytest.raises(SpecError, match=re.escape(message)):
            lepton.Retries(**options)
    with pytest.raises(SpecError, match="max_retries: Input should be greater than or equal to 0"):
        lepton.function(retries=-1)(target)
    with pytest.raises(SpecError, match="retries= takes"):
        lepton.function(retries="3")(target)


def test_asgi_decorator_forms_and_refusals():
    @lepton.asgi
    def make_app():
        return bare_app

    assert make_app.spec.handler.kind == "asgi" and make_app.name == "make-app" and make_app() is bare_app
    assert lepton.asgi(name="web", max_scale=4)(make_app.obj).spec.max_scale == 4
    with pytest.raises(SpecError, match=r"@lepton.asgi takes no batch="):
        lepton.asgi(name="web", batch=lepton.Batch())
    with pytest.raises(SpecError, match=r"@lepton.asgi takes no methods="):
        lepton.asgi(bare_app, name="web", methods=["GET"])
    with pytest.raises(SpecError, match="no option max_scal=; did you mean max_scale="):
        lepton.asgi(name="web", max_scal=4)
    with pytest.raises(SpecError, match="needs name="):
        lepton.asgi(FastAPI())  # an app object has no __name__
    with pytest.raises(SpecError, match="not be async"):
        lepton.asgi(async_factory)


async def async_factory():
    return bare_app


def target(x: int) -> int:
    return x
