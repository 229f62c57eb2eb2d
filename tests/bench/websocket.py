"""WebSocket echo through the platform (which checks the upgrade, then hands the caller's
socket to the replica) against the same echo straight on the replica's Unix socket, in
alternating rounds of one run. Each client sends a message and waits for its echo, over and
over.

Goal: through the platform >= 0.8x the messages/s of the replica alone.

    python tests/bench/websocket.py [--seconds 3] [--rounds 3] [--clients 8]
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from websockets.sync.client import ClientConnection, connect

from tests.bench.load import Platform, load_parser, median

ECHO = Path(__file__).resolve().parent / "apps" / "echo_socket.py"
MESSAGE = "x" * 64


def through_platform(platform: Platform) -> ClientConnection:
    return connect(
        platform.url.replace("http://", "ws://") + "/fn/echo/ws", additional_headers={"Authorization": f"Bearer {platform.api.token}"}
    )


def straight(address: str) -> ClientConnection:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect("\0" + address[1:])  # an abstract socket, '@name'
    return connect("ws://replica/ws", sock=sock)


def echo_rate(open_socket, clients: int, seconds: float) -> float:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(open_socket()) for _ in range(clients)]
        return _ping_pong(sockets, seconds)


def _ping_pong(sockets: list[ClientConnection], seconds: float) -> float:
    clients = len(sockets)
    counts = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        ws = sockets[i]
        while time.perf_counter() < deadline:
            ws.send(MESSAGE)
            assert ws.recv() == MESSAGE
            counts[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def main() -> None:
    args = load_parser(__doc__).parse_args()
    platform = Platform()
    try:
        platform.deploy(ECHO)
        (replica,) = [r for r in platform.info("echo")["replica_details"] if r["state"] == "ready"]
        echo_rate(lambda: through_platform(platform), args.clients, 0.5)  # warm both ways
        echo_rate(lambda: straight(replica["socket"]), args.clients, 0.5)
        routed, direct = [], []
        for _ in range(args.rounds):
            routed.append(echo_rate(lambda: through_platform(platform), args.clients, args.seconds))
            direct.append(echo_rate(lambda: straight(replica["socket"]), args.clients, args.seconds))
    finally:
        platform.close()
    print(f"websocket echo, {args.clients} clients, {len(MESSAGE)}-byte text messages, {args.rounds} x {args.seconds:g} s rounds")
    print(f"  straight to the replica's socket   {median(direct):9.0f} messages/s")
    print(f"  through the platform (/fn/echo/ws) {median(routed):9.0f} messages/s   {median(routed) / median(direct):.2f}x   goal >= 0.8x")


if __name__ == "__main__":
    main()
