"""Web endpoints through the platform's request path: sub-paths, methods (405 before any
replica is woken), a FastAPI app under `/fn/NAME/`, and WebSockets tunnelled to it."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.embedded.conftest import PlatformProcess, deployed_platform
from tests.helpers import FUNCTIONS

WEB = FUNCTIONS / "platform" / "web.py"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    yield from deployed_platform(tmp_path_factory, "web", WEB)


def ws_url(platform: PlatformProcess, path: str) -> str:
    return platform.url.replace("http://", "ws://") + path


def test_a_request_handler_sees_the_method_sub_path_query_and_headers(platform):
    with platform.http() as http:
        got = http.get("/fn/echo/a/b%20c", params={"x": "1"}, headers={"X-Probe": "yes"}).json()
        assert got == {"method": "GET", "path": "/a/b c", "query": {"x": "1"}, "header": "yes", "body": ""}
        assert http.put("/fn/echo", content=b"payload").json()["body"] == "payload"
        assert http.get("/fn/echo/a%3Fb", params={"x": "1"}).json()["path"] == "/a?b"  # an encoded '?' stays in the path
        job = http.get("/fn/echo/a%3Fb", params={"x": "2"}, headers={"Prefer": "respond-async"})  # and so in a job
        done = http.get(job.headers["location"], params={"wait": 10}).json()
        assert (done["result"]["path"], done["result"]["query"]) == ("/a?b", {"x": "2"})
        assert http.get("/fn/hello", params={"name": "lepton"}).json() == "hello lepton"


def test_a_method_the_function_does_not_allow_gets_405_with_allow(platform):
    with platform.http() as http:
        refused = http.delete("/fn/echo/x")
        assert refused.status_code == 405 and refused.headers["allow"] == "GET, POST, PUT, HEAD"
        assert refused.json()["detail"] == "function 'echo' allows GET, POST, PUT, HEAD; not DELETE"
        assert http.post("/fn/hello", json={}).status_code == 405


def test_an_asgi_app_is_served_under_its_function_path(platform):
    with platform.http() as http:
        assert http.get("/fn/chat/").json() == {"app": "chat"}
        docs = http.get("/fn/chat/docs")
        assert docs.status_code == 200 and "/fn/chat/openapi.json" in docs.text  # root_path reached the app
        assert http.get("/fn/chat/openapi.json").json()["paths"].keys() >= {"/"}
    assert httpx.get(f"{platform.url}/fn/chat/").status_code == 401  # private by default, like any function


def wait_in_flight(platform: PlatformProcess, count: int) -> None:
    deadline = time.monotonic() + 10
    while platform.info("chat")["in_flight"] != count:
        assert time.monotonic() < deadline, f"chat has {platform.info('chat')['in_flight']} in flight, not {count}"
        time.sleep(0.05)


@pytest.mark.parametrize("padding", [0, 10], ids=["handed-over", "tunnelled"])
def test_websockets_pass_through_and_hold_a_replica_slot_while_open(platform, padding):
    """The platform hands the caller's socket to the replica; a request head too large to hand
    over (over 64 KiB: here ten 7 KB headers) goes through the tunnel instead. Either way the
    socket holds a slot while it is open."""
    auth = {"Authorization": f"Bearer {platform.token}", **{f"X-Padding-{i}": "p" * 7000 for i in range(padding)}}
    with connect(ws_url(platform, "/fn/chat/ws"), additional_headers=auth, max_size=None) as socket:
        for text in ("one", "two" * 1000):
            socket.send(text)
            assert socket.recv(timeout=10) == "echo: " + text
        assert platform.info("chat")["in_flight"] == 1
    wait_in_flight(platform, 0)


def test_a_replica_that_dies_frees_the_slots_of_its_websockets(platform):
    auth = {"Authorization": f"Bearer {platform.token}"}
    with connect(ws_url(platform, "/fn/chat/ws"), additional_headers=auth) as socket:
        socket.send("hello")
        assert socket.recv(timeout=10) == "echo: hello"
        (replica,) = [r for r in platform.info("chat")["replica_details"] if r["in_flight"]]
        os.kill(replica["pid"], signal.SIGKILL)
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)
    wait_in_flight(platform, 0)
    with connect(ws_url(platform, "/fn/chat/ws"), additional_headers=auth) as socket:  # a new replica takes the next one
        socket.send("again")
        assert socket.recv(timeout=10) == "echo: again"


def test_websockets_to_other_functions_or_without_a_token_are_refused(platform):
    auth = {"Authorization": f"Bearer {platform.token}"}
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(platform, "/fn/echo"), additional_headers=auth)
    assert refused.value.response.status_code == 400
    assert b"not an ASGI app" in refused.value.response.body
    with pytest.raises(InvalidStatus) as anonymous:
        connect(ws_url(platform, "/fn/chat/ws"))
    assert anonymous.value.response.status_code == 401


def test_only_the_platform_may_hand_sockets_to_a_replica(platform):
    """The handoff channel is an abstract socket, which has no permissions: a process of another
    user that hands the replica a socket with a WebSocket request on it gets no answer."""
    (replica,) = [r for r in platform.info("chat")["replica_details"] if r["state"] == "ready"]
    assert hand_over(replica["socket"] + ".ws", uid=None).startswith(b"HTTP/1.1 101")  # the platform's own user
    assert hand_over(replica["socket"] + ".ws", uid=65534) == b""


def hand_over(channel: str, uid: int | None) -> bytes:
    """From a forked child (as `uid` if given): hand one end of a socket pair to the replica
    with a WebSocket upgrade request, and read what comes back on the other end."""
    import array
    import socket

    ours, theirs = socket.socketpair()
    request = (
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    pid = os.fork()
    if pid == 0:
        try:
            if uid is not None:
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
                sock.connect("\0" + channel[1:])
                try:  # a socket in flight outlives its sender: the replica gets it, or it is dropped
                    sock.sendmsg(
                        [(1).to_bytes(8, "big") + request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno()]))]
                    )
                except OSError:
                    pass  # the replica closed the channel first
        finally:
            os._exit(0)
    theirs.close()
    ours.settimeout(10)
    answer = ours.recv(200)  # b"" once the last copy of `theirs` is closed unread
    os.waitpid(pid, 0)
    ours.close()
    return answer
