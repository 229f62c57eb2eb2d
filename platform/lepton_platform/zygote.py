"""The template process replicas are forked from, for millisecond cold starts.

The zygote imports the runtime and the heavy libraries functions share (torch, numpy when
installed) once, then forks a child per replica on request. The child only imports the
function's own module and runs `setup()`. torch runs one thread at fork time (forking a
multi-threaded torch deadlocks the child); each child restores its own thread count.

Protocol: JSON lines over a Unix socket. The platform sends {"op": "spawn", ...}; the zygote
answers {"event": "spawned", "id", "pid"} and reports {"event": "exit", "pid", "status"}.
This module is both sides: `main()` runs in the zygote, `Zygote` is the platform's client.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger("lepton.platform.zygote")
PRELOAD = (
    "lepton.runtime.app", "lepton.runtime.server", "lepton.loader", "packaging.requirements",
    "uvicorn.protocols.http.httptools_impl", "uvicorn.lifespan.on", "uvloop",
)
SHARED_HEAVY = ("numpy", "torch")
PR_SET_PDEATHSIG = 1
LIFELINE_ENV = "LEPTON_LIFELINE"


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to signal this process when its parent dies, so nothing is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


# -- zygote side ---------------------------------------------------------------------------


def preload() -> list[str]:
    loaded = []
    for name in PRELOAD:
        importlib.import_module(name)
    extra = [m for m in os.environ.get("LEPTON_PRELOAD", "").split(",") if m]
    for name in (*SHARED_HEAVY, *extra):
        try:
            importlib.import_module(name)
            loaded.append(name)
        except ImportError:
            continue
    _warm_up()
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return loaded


def _warm_up() -> None:
    """Build one throwaway function app, so the modules pydantic and FastAPI import lazily
    on first use are already loaded in every child."""
    import lepton
    from lepton.runtime.app import build_app

    @lepton.function(name="warm-up", requirements=["pip"])
    def warm_up(a: int, b: str = "") -> dict[str, int]:
        return {b: a}

    build_app(warm_up).openapi()


def hold_lifeline() -> None:
    """Exit when the platform does, however it ends, but outlive the template process.

    The platform holds the only write end of a pipe whose read end the template process and
    every replica forked from it inherit: end of file means the platform is gone. (A parent-
    death signal would tie a replica to the template process instead, so killing that one
    would take every serving replica down with it.)"""
    fd = int(os.environ.pop(LIFELINE_ENV, "-1"))
    if fd < 0:
        die_with_parent()
        return

    def watch() -> None:
        while os.read(fd, 1):
            pass
        os._exit(1)

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def run_child(request: dict[str, Any]) -> None:
    """In the forked child: become the replica. Never returns."""
    code = 1
    try:
        if request.get("cpus"):  # first, so every thread the replica starts inherits it
            os.sched_setaffinity(0, request["cpus"])
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        hold_lifeline()
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(request.get("threads") or os.cpu_count() or 1))
        from lepton.errors import LeptonError
        from lepton.loader import add_platform_packages, load_function
        from lepton.runtime.server import configure_logging, serve

        configure_logging(request.get("log_level", "info"))
        add_platform_packages()
        try:
            fn = load_function(f"{request['entry']}:{request['function']}")
        except LeptonError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            code = exc.exit_code
        else:
            code = serve(fn, uds=request["uds"], log_level=request.get("log_level", "info"))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(control_path: str) -> None:
    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C on `lepton up` is the platform's to handle
    loaded = preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # queue only; the loop reaps

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(control_path)
    listener.listen(1)
    conn, _ = listener.accept()
    listener.close()
    send = lambda msg: conn.sendall((json.dumps(msg) + "\n").encode())  # noqa: E731
    send({"event": "ready", "pid": os.getpid(), "preloaded": loaded})

    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(conn, selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "signal")
    buffer = b""
    while True:
        for key, _ in selector.select():
            if key.data == "signal":
                os.read(wake_r, 512)
                _reap(children, send)
                continue
            data = conn.recv(65536)
            if not data:  # the platform is gone: take the replicas with us
                for pid in children:
                    _kill(pid, signal.SIGTERM)
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    selector.close()
                    conn.close()
                    os.close(wake_r)
                    os.close(wake_w)
                    signal.set_wakeup_fd(-1)
                    run_child(request)
                children.add(pid)
                send({"event": "spawned", "id": request["id"], "pid": pid})
        _reap(children, send)


def _reap(children: set[int], send: Callable[[dict[str, Any]], None]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        send({"event": "exit", "pid": pid, "status": os.waitstatus_to_exitcode(status)})


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


# -- platform side -------------------------------------------------------------------------


class ZygoteUnavailable(RuntimeError):
    pass


class Zygote:
    """The platform's handle on the template process: spawn replicas, hear of their exits."""

    def __init__(self, run_dir: Path, log_path: Path, on_exit: Callable[[int, int], None]) -> None:
        self.control_path = str(run_dir / "zygote.sock")
        self.log_path = log_path
        self.on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.preloaded: list[str] = []
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._ready = asyncio.Event()
        self._reader_task: asyncio.Task[None] | None = None
        self._closing = False
        # The platform keeps the write end for its whole life; see hold_lifeline().
        self._lifeline, self._lifeline_keep = os.pipe()

    @property
    def available(self) -> bool:
        return self._ready.is_set()

    async def wait_available(self, timeout: float) -> bool:
        """Wait for a template process that is still starting (importing torch takes seconds)."""
        if self.available or self.process is None or self.process.returncode is not None:
            return self.available
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        return self.available

    async def start(self, timeout: float = 120) -> None:
        self._ready.clear()
        if os.path.exists(self.control_path):
            os.unlink(self.control_path)
        log = open(self.log_path, "ab")
        from lepton_platform.replicas import replica_environment

        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "lepton_platform.zygote", self.control_path, stdout=log, stderr=log,
            env={**replica_environment(), LIFELINE_ENV: str(self._lifeline)}, pass_fds=(self._lifeline,),
        )
        log.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not os.path.exists(self.control_path):
            if self.process.returncode is not None or loop.time() > deadline:
                raise ZygoteUnavailable(f"template process did not start; see {self.log_path}")
            await asyncio.sleep(0.02)
        reader, self._writer = await asyncio.open_unix_connection(self.control_path)
        hello = json.loads(await asyncio.wait_for(reader.readline(), max(1.0, deadline - loop.time())))
        self.preloaded = hello.get("preloaded", [])
        self._ready.set()
        self._reader_task = asyncio.create_task(self._read(reader))
        logger.info("template process [%s] ready; preloaded %s", hello["pid"], ", ".join(self.preloaded) or "nothing extra")

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            msg = json.loads(line)
            if msg["event"] == "spawned":
                future = self._pending.pop(msg["id"], None)
                if future and not future.done():
                    future.set_result(msg["pid"])
            elif msg["event"] == "exit":
                self.on_exit(msg["pid"], msg["status"])
        self._ready.clear()
        if self._closing:
            return
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ZygoteUnavailable("template process exited"))
        self._pending.clear()
        logger.warning("template process exited; replicas start as fresh processes until it is back")

    async def spawn(self, request: dict[str, Any]) -> int:
        if not self.available or self._writer is None:
            raise ZygoteUnavailable("template process is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request["id"]] = future
        self._writer.write((json.dumps(request) + "\n").encode())
        await self._writer.drain()
        return await future

    async def stop(self) -> None:
        self._closing = True
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except asyncio.TimeoutError:
                self.process.kill()
        if self._reader_task:
            self._reader_task.cancel()


if __name__ == "__main__":
    main(sys.argv[1])
