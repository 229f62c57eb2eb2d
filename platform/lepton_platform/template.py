"""The template process replicas are forked from, for millisecond cold starts.

The template process imports the runtime and the heavy libraries functions share (torch,
numpy when installed) once, then forks a child per replica on request. The child only
imports the function's own module and runs `setup()`. torch runs one thread at fork time
(forking a multi-threaded torch deadlocks the child); each child restores its own thread
count.

Protocol: one JSON message per packet on a SOCK_SEQPACKET socket pair. The platform sends a
spawn request with a memfd attached that holds the replica's environment (its scoped token and
secrets): the template process passes the descriptor to the child without reading it, so no
secret ever sits in its memory for a later child to inherit. It answers
{"event": "spawned", "id", "pid"} and reports {"event": "exit", "pid", "status"}.
This module is both sides: `main()` runs in the template process, `TemplateProcess` is the
platform's client.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import importlib
import json
import logging
import os
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lepton.runtime import logstamp

logger = logging.getLogger("lepton.platform.template")
PRELOAD = (
    "lepton.runtime.app",
    "lepton.runtime.server",
    "lepton.loader",
    "packaging.requirements",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.lifespan.on",
    "uvloop",
    "lepton_platform.isolation",
    "lepton_platform.cgroups",
    "lepton.runtime.logstamp",
)
SHARED_HEAVY = ("numpy", "torch")
PR_SET_PDEATHSIG = 1
LIFELINE_ENV = "LEPTON_LIFELINE"
MAX_REQUEST = 1 << 20
SPARE_AFTER = 0.05


def die_with_parent(sig: int = signal.SIGKILL) -> None:
    """Ask Linux to signal this process when its parent dies, so nothing is orphaned."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        pass


# -- template process side ----------------------------------------------------------------


def preload() -> list[str]:
    """Import what every replica needs, then the heavy modules replicas share: numpy and
    torch when installed, plus `LEPTON_PRELOAD=mod1,mod2`. `LEPTON_PRELOAD=none` skips the
    heavy ones: a platform whose functions use no torch saves its import (about 3 s before
    the first replica can fork) and the template process's memory."""
    loaded = []
    for name in PRELOAD:
        importlib.import_module(name)
    extra = [m.strip() for m in os.environ.get("LEPTON_PRELOAD", "").split(",") if m.strip()]
    heavy = () if extra == ["none"] else (*SHARED_HEAVY, *extra)
    for name in heavy:
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

    def warm_up(a: int, b: str = "") -> dict[str, int]:
        return {b: a}

    build_app(lepton.function(warm_up, name="warm-up", requirements=["pip"])).openapi()


def cuda_initialized() -> bool:
    """Whether CUDA was initialised here, which must never happen: CUDA reads
    CUDA_VISIBLE_DEVICES once, when it initialises, and a child cannot undo its parent's."""
    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_initialized())


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


def read_environment(fd: int) -> dict[str, str]:
    """The replica's environment from the platform's memfd, which is then closed."""
    try:
        environment: dict[str, str] = json.loads(os.pread(fd, os.fstat(fd).st_size, 0))
        return environment
    finally:
        os.close(fd)


def run_child(request: dict[str, Any], env_fd: int) -> None:
    """In the forked child: become the replica. Never returns."""
    code = 1
    try:
        if request.get("cgroup"):  # first, so the kernel charges it all that it allocates
            from lepton_platform.cgroups import join

            join(request["cgroup"])
        if request.get("cpus"):  # so every thread the replica starts inherits it
            os.sched_setaffinity(0, request["cpus"])
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        logs = logstamp.open_files(Path(request["log"]), request.get("log_keep", 0))  # before the sandbox keeps it out
        os.dup2(logs[0], 1)
        os.dup2(logs[0], 2)
        os.environ.update(read_environment(env_fd))
        from lepton_platform import isolation

        seen = isolation.enter(request["isolation"])  # single-threaded still: before the lifeline's thread
        logstamp.install(request["id"], logs, request.get("log_max_bytes", 0))  # before the function's code runs
        os.environ.update(isolation.environment(seen))
        os.chdir(seen["app"])
        hold_lifeline()
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(request.get("threads") or os.cpu_count() or 1))
        from lepton.errors import LeptonError
        from lepton.loader import add_platform_packages, load_function
        from lepton.runtime.server import configure_logging, serve

        configure_logging(request.get("log_level", "info"))
        add_platform_packages()
        try:
            fn = load_function(f"{seen['app']}/{request['entrypoint']}:{request['function']}")
        except LeptonError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            code = exc.exit_code
        else:
            code = serve(fn, uds=request["uds"], log_level=request.get("log_level", "info"))
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        logstamp.close()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(control_fd: int) -> None:
    die_with_parent(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C on `lepton up` is the platform's to handle
    loaded = preload()
    # What is loaded now lives as long as every replica: out of the cyclic collector's scans.
    # A replica importing a file of a thousand functions otherwise spent most of its start
    # in collections walking the preloaded heap, and each scan wrote to pages it shares.
    gc.collect()
    gc.freeze()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # queue only; the loop reaps

    conn = socket.socket(fileno=control_fd)

    def send(message: dict[str, Any]) -> None:
        conn.send(json.dumps(message).encode())  # one packet per message

    send({"event": "ready", "pid": os.getpid(), "preloaded": loaded, "cuda_initialized": cuda_initialized()})

    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(conn, selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "signal")

    def fork_child() -> tuple[int, socket.socket]:
        """A child that waits for its spawn request on a channel of its own. One is forked
        ahead of time, so a cold start does not wait for fork(): copying the page tables of
        a template process holding torch takes ~15 ms."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            selector.close()
            conn.close()
            ours.close()
            os.close(wake_r)
            os.close(wake_w)
            signal.set_wakeup_fd(-1)
            data, fds, _, _ = socket.recv_fds(theirs, MAX_REQUEST, 1)
            if not data:  # the template process is gone, or never needed this one
                os._exit(0)
            theirs.close()
            run_child(json.loads(data), fds[0])
        theirs.close()
        children.add(pid)
        return pid, ours

    spare: tuple[int, socket.socket] | None = None
    while True:
        # The next spare is forked once nothing has happened for a moment, not while a
        # replica that was just handed one is starting on a shared core.
        ready = selector.select(None if spare else SPARE_AFTER)
        if not ready and spare is None:
            spare = fork_child()
        for key, _ in ready:
            if key.data == "signal":
                os.read(wake_r, 512)
                _reap(children, send)
                continue
            data, fds, _, _ = socket.recv_fds(conn, MAX_REQUEST, 1)
            if not data:  # the platform is gone: take the replicas with us
                for pid in children:
                    _kill(pid, signal.SIGTERM)
                return
            request = json.loads(data)
            pid, channel = spare or fork_child()
            spare = None
            try:
                socket.send_fds(channel, [data], fds)
            except OSError:  # the spare died while it waited: fork one now
                channel.close()
                pid, channel = fork_child()
                socket.send_fds(channel, [data], fds)
            channel.close()
            os.close(fds[0])
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


class TemplateUnavailable(RuntimeError):
    pass


class TemplateProcess:
    """The platform's handle on the template process: spawn replicas, hear of their exits."""

    def __init__(self, log_path: Path, environment: dict[str, str], on_exit: Callable[[int, int], None]) -> None:
        self.log_path = log_path
        self.environment = environment
        self.on_exit = on_exit
        self.process: asyncio.subprocess.Process | None = None
        self.preloaded: list[str] = []
        self.cuda_initialized = False
        self._sock: socket.socket | None = None
        self._pending: dict[str, asyncio.Future[int]] = {}
        self._ready = asyncio.Event()
        self._hello: asyncio.Future[dict[str, Any]] | None = None
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
        except TimeoutError:
            pass
        return self.available

    async def start(self, timeout: float = 120) -> None:
        self._ready.clear()
        self._close_socket()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        log = open(self.log_path, "ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "lepton_platform.template",
                str(theirs.fileno()),
                stdout=log,
                stderr=log,
                env={**self.environment, LIFELINE_ENV: str(self._lifeline)},
                pass_fds=(self._lifeline, theirs.fileno()),
            )
        finally:
            log.close()
            theirs.close()
        mine.setblocking(False)
        self._sock = mine
        loop = asyncio.get_running_loop()
        self._hello = loop.create_future()
        loop.add_reader(mine, self._read)
        exited = asyncio.ensure_future(self.process.wait())
        first: set[asyncio.Future[Any]] = {self._hello, exited}
        done, _ = await asyncio.wait(first, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if self._hello not in done:
            exited.cancel()
            raise TemplateUnavailable(f"template process did not start; see {self.log_path}")
        exited.cancel()
        hello = self._hello.result()
        self.preloaded = hello.get("preloaded", [])
        self.cuda_initialized = hello.get("cuda_initialized", False)
        if self.cuda_initialized:
            logger.error("the template process initialised CUDA: forked replicas cannot be given their own GPUs")
        self._ready.set()
        logger.info("template process [%s] ready; preloaded %s", hello["pid"], ", ".join(self.preloaded) or "nothing extra")

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None  # the reader is removed before the socket goes
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._gone()
            return
        msg = json.loads(data)
        if msg["event"] == "ready":
            if self._hello is not None and not self._hello.done():
                self._hello.set_result(msg)
        elif msg["event"] == "spawned":
            future = self._pending.pop(msg["id"], None)
            if future and not future.done():
                future.set_result(msg["pid"])
            elif future is not None:  # its start was cancelled meanwhile: nobody would track it
                _kill(msg["pid"], signal.SIGKILL)
        elif msg["event"] == "exit":
            self.on_exit(msg["pid"], msg["status"])

    def _gone(self) -> None:
        self._close_socket()
        self._ready.clear()
        if self._closing:
            return
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TemplateUnavailable("template process exited"))
        self._pending.clear()
        logger.warning("template process exited; replicas start as fresh processes until it is back")

    def _close_socket(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock)
            self._sock.close()
            self._sock = None

    async def spawn(self, request: dict[str, Any], environment: dict[str, str]) -> int:
        """Fork a replica; `environment` reaches it through a memfd the template process never reads."""
        if not self.available or self._sock is None:
            raise TemplateUnavailable("template process is not running")
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[request["id"]] = future
        env_fd = os.memfd_create("lepton-env", os.MFD_CLOEXEC)
        try:
            os.write(env_fd, json.dumps(environment).encode())
            packet = [json.dumps(request).encode()]
            while True:
                if self._sock is None:
                    self._pending.pop(request["id"], None)
                    raise TemplateUnavailable("template process exited")
                try:
                    socket.send_fds(self._sock, packet, [env_fd])
                    break
                except BlockingIOError:  # the template process is busy forking: its queue is full
                    await asyncio.sleep(0.001)
                except OSError as exc:
                    self._pending.pop(request["id"], None)
                    raise TemplateUnavailable(f"template process is not reachable: {exc}") from exc
        finally:
            os.close(env_fd)
        return await future

    async def stop(self) -> None:
        self._closing = True
        self._close_socket()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()


if __name__ == "__main__":
    main(int(sys.argv[1]))
