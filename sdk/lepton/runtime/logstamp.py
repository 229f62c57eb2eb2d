"""A replica's log: every line it writes, whatever writes it, reaches its file stamped as

    2026-12-02T09:41:42.123Z hello-00001-3fa21 out trace=4bf92f3577b34da6a3ce929d0e0e4736 loaded 3 models
    2026-12-02T09:41:42.125Z hello-00001-3fa21 err INFO uvicorn.error: Application startup complete.

UTC with milliseconds, always 24 characters (so lines sort by time as text); the replica;
the stream (`out` or `err`); `trace=<32 hex>` when Python code wrote the line while a traced
request ran (`lepton.runtime.tracing.trace_id`); then the text. Readers: `lepton_platform.logfiles`.

How. `install` points fd 1 and 2 at pipes that a thread reads, so C libraries, subprocesses
and `os.write(1, ...)` are stamped too, when the thread reads them. `sys.stdout` and
`sys.stderr` become `StampedStream`s that stamp whole lines in the writing thread, with its
trace id, and skip the pipe. One `LogSink` appends both to the file, under a lock: a line is
never torn, and the file is in time order.

Rotation is the sink's: it alone knows how much it writes and when, so it holds the file to
`max_bytes` exactly; a platform that watched the files could not stop a flood between two
looks, and would have to look at every replica's file while nothing else happens. A sandboxed
replica may not create or rename files under $LEPTON_HOME, so the platform opens
`<replica>.log` and `<replica>.log.1` ... `.log.<keep>` for it before it is confined
(`open_files`). When the next line would take `.log` past `max_bytes`, the sink copies
`.log.<keep-1>` over `.log.<keep>`, ..., `.log` over `.log.1` (`copy_file_range`: in the
kernel; the file is at most `max_bytes`) and truncates `.log`. The names keep their usual
meaning: `.log` is the newest.
"""

from __future__ import annotations

import atexit
import errno
import io
import os
import select
import signal
import sys
import threading
import time
from pathlib import Path
from typing import BinaryIO, TextIO

from lepton.runtime.tracing import trace_id

ENV = "LEPTON_LOG"  # "<max_bytes>:<fd>,<fd>,...": the files of a replica started as a fresh process
LINE_MAX = 16 << 10  # longer lines are cut into lines of this many bytes
READ_SIZE = 64 << 10
DRAIN_TIMEOUT = 2.0


def rotated_paths(path: Path, keep: int) -> list[Path]:
    """A replica's files, newest first: `<replica>.log`, then `.log.1` ... `.log.<keep>`."""
    return [path, *(Path(f"{path}.{n}") for n in range(1, keep + 1))]


def open_files(path: Path, keep: int) -> list[int]:
    """Open (creating) a replica's log files for its sink: the platform does, before the
    replica is confined. Each is readable, as the sink copies them when it rotates."""
    fds = [os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)]
    try:
        for older in rotated_paths(path, keep)[1:]:
            fds.append(os.open(older, os.O_RDWR | os.O_CREAT, 0o644))
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return fds


def stamp(seconds: float) -> str:
    """`seconds` since the epoch as the 24-character UTC time that starts a log line."""
    whole, millis = divmod(round(seconds * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(whole)) + f"{millis:03d}Z"


class LogSink:
    """Appends stamped lines to a replica's log and rotates it (see the module's docstring)."""

    def __init__(self, replica: str, fds: list[int], max_bytes: int) -> None:
        self.fds = fds
        self.max_bytes = max_bytes  # 0: never rotated
        self.size = os.fstat(fds[0]).st_size
        self.lock = threading.RLock()  # reentrant: the SIGTERM handler may write while its thread is writing
        self.local = True  # False in a process forked from the replica: it writes through the pipes
        self._heads = {stream: f" {replica} {stream} ".encode() for stream in ("out", "err")}
        self._second, self._prefix = -1, b""

    def write(self, stream: str, lines: list[bytes], trace: str | None = None) -> None:
        """Stamp whole lines (without their newlines) with the time now and append them."""
        if not lines:
            return
        with self.lock:
            second, millis = divmod(time.time_ns() // 1_000_000, 1000)
            if second != self._second:
                self._second = second
                self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)).encode()
            head = self._prefix + b"%03dZ" % millis + self._heads[stream]
            if trace and trace.isalnum():  # a value with a space would break the line's fields
                head += b"trace=%s " % trace.encode()
            data = head + (b"\n" + head).join(lines) + b"\n"
            if self.max_bytes and self.size + len(data) > self.max_bytes:
                self._append([head + line + b"\n" for line in lines])
            else:
                self._write(data)

    def _append(self, items: list[bytes]) -> None:
        """Write `items`, rotating before the one that would take the file past max_bytes."""
        batch: list[bytes] = []
        size = 0
        for item in items:
            if self.max_bytes and self.size + size + len(item) > self.max_bytes and self.size + size > 0:
                self._write(b"".join(batch))
                batch, size = [], 0
                self._rotate()
            batch.append(item)
            size += len(item)
        self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        try:
            written = os.write(self.fds[0], data)
            while written < len(data):
                written += os.write(self.fds[0], data[written:])
        except OSError:
            return  # a full disk: the line is lost, but the print that wrote it does not fail
        self.size += written

    def _rotate(self) -> None:
        try:
            for newer, older in zip(reversed(self.fds[:-1]), reversed(self.fds[1:])):
                _copy(newer, older)
            os.ftruncate(self.fds[0], 0)
        except OSError:
            pass  # keeps writing where it is rather than lose lines
        self.size = os.fstat(self.fds[0]).st_size

    def forked(self) -> None:
        self.local = False


def _copy(src: int, dst: int) -> None:
    """Make file `dst` a copy of file `src`."""
    os.ftruncate(dst, 0)
    size, done = os.fstat(src).st_size, 0
    while done < size:
        try:
            count = os.copy_file_range(src, dst, size - done, done, done)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            count = os.pwrite(dst, os.pread(src, min(size - done, 1 << 20), done), done)
        if count <= 0:
            return
        done += count


def _cut(lines: list[bytes]) -> list[bytes]:
    """Lines of at most LINE_MAX bytes, without a trailing carriage return."""
    if len(lines) == 1 and len(lines[0]) <= LINE_MAX and not lines[0].endswith(b"\r"):  # what print() writes
        return lines
    out = []
    for line in lines:
        line = line.removesuffix(b"\r")
        if len(line) <= LINE_MAX:
            out.append(line)
        else:
            out.extend(line[i : i + LINE_MAX] for i in range(0, len(line), LINE_MAX))
    return out


class StampedStream(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` of a replica: whole lines go to the sink with the writer's
    trace id. A partial line waits for its newline (a `flush` does not cut it); in a process
    forked from the replica, text goes through the original stream and the pipe instead."""

    def __init__(self, sink: LogSink, stream: str, original: TextIO) -> None:
        self._sink = sink
        self._stream = stream
        self._original = original
        self._pending = ""
        self._lock = threading.RLock()

    encoding = "utf-8"
    errors = "backslashreplace"

    @property
    def buffer(self) -> BinaryIO:  # bytes written here are stamped by the thread
        return self._original.buffer

    def fileno(self) -> int:
        return self._original.fileno()

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not self._sink.local:
            return self._original.write(text)
        with self._lock:
            if "\n" not in text and len(self._pending) + len(text) < LINE_MAX:
                self._pending += text
                return len(text)
            *lines, self._pending = (self._pending + text).split("\n")
            if len(self._pending) >= LINE_MAX:  # whole pieces of a very long line go now
                cut = len(self._pending) - len(self._pending) % LINE_MAX
                lines.append(self._pending[:cut])
                self._pending = self._pending[cut:]
            self._sink.write(self._stream, _cut([line.encode("utf-8", "backslashreplace") for line in lines]), trace_id.get())
        return len(text)

    def flush(self) -> None:
        self._original.flush()

    def close(self) -> None:  # a library closing sys.stdout must not end the replica's log
        self.flush()

    def end(self) -> None:
        """Write out a partial line: the replica is ending."""
        with self._lock:
            pending, self._pending = self._pending, ""
            if pending and self._sink.local:
                self._sink.write(self._stream, _cut([pending.encode("utf-8", "backslashreplace")]), trace_id.get())


class _Pump(threading.Thread):
    """Stamps what reaches fd 1 and 2 through their pipes."""

    def __init__(self, sink: LogSink, pipes: dict[int, str]) -> None:
        super().__init__(name="lepton-log", daemon=True)
        self.sink = sink
        self.pipes = pipes  # read end -> stream
        self.pending = {fd: b"" for fd in pipes}
        self.wake_r, self.wake_w = os.pipe()

    def run(self) -> None:
        poller = select.poll()
        for fd in (*self.pipes, self.wake_r):
            poller.register(fd, select.POLLIN)
        open_ends = set(self.pipes)
        while open_ends:
            ending = False
            for fd, _ in poller.poll():
                if fd == self.wake_r:
                    ending = True
                elif not self._read(fd):
                    poller.unregister(fd)
                    open_ends.discard(fd)
            if ending:
                break
        for fd in open_ends:  # what was written before the end: a process the replica started may hold the pipe open
            os.set_blocking(fd, False)
            try:
                while self._read(fd):
                    pass
            except BlockingIOError:
                pass
        for fd, rest in self.pending.items():
            if rest:
                self.sink.write(self.pipes[fd], _cut([rest]))

    def _read(self, fd: int) -> bool:
        data = os.read(fd, READ_SIZE)
        if not data:
            return False
        *lines, rest = (self.pending[fd] + data).split(b"\n")
        if len(rest) >= LINE_MAX:
            cut = len(rest) - len(rest) % LINE_MAX
            lines.append(rest[:cut])
            rest = rest[cut:]
        self.pending[fd] = rest
        if lines:
            self.sink.write(self.pipes[fd], _cut(lines))
        return True

    def finish(self) -> None:
        os.write(self.wake_w, b"x")
        self.join(DRAIN_TIMEOUT)


_installed: tuple[LogSink, _Pump, list[StampedStream]] | None = None


def install(replica: str, fds: list[int], max_bytes: int) -> LogSink:
    """Stamp everything this process writes from now on into `fds` (from `open_files`):
    fd 1 and 2, `sys.stdout` and `sys.stderr`. Call before the function's code runs, and
    `close` before the process exits (an atexit handler does, for a normal exit)."""
    global _installed
    for fd in fds:
        os.set_inheritable(fd, False)  # what the replica starts writes to fd 1 and 2
    sink = LogSink(replica, fds, max_bytes)
    for original in (sys.__stdout__, sys.__stderr__):
        if original is not None:  # None in a process started without them
            original.flush()
    pipes = {}
    for target, stream in ((1, "out"), (2, "err")):
        read_end, write_end = os.pipe()
        os.dup2(write_end, target)
        os.close(write_end)
        pipes[read_end] = stream
    pump = _Pump(sink, pipes)
    pump.start()
    streams = []
    for name, stream in (("stdout", "out"), ("stderr", "err")):
        original = getattr(sys, f"__{name}__")
        original.reconfigure(line_buffering=True)  # what a forked child prints reaches the pipe as it prints
        streams.append(StampedStream(sink, stream, original))
        setattr(sys, name, streams[-1])
    os.register_at_fork(after_in_child=sink.forked)
    _installed = (sink, pump, streams)
    atexit.register(close)
    signal.signal(signal.SIGTERM, _end)
    return sink


def _end(signum: int, frame: object) -> None:
    """SIGTERM, which uvicorn catches while it serves, then raises again once it has shut down:
    end the log, then the process as the signal would have."""
    close()
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def install_from_env(replica: str) -> bool:
    """`install` with the files the platform passed a fresh replica process in LEPTON_LOG."""
    value = os.environ.pop(ENV, "")
    if not value:
        return False
    max_bytes, _, fds = value.partition(":")
    install(replica, [int(fd) for fd in fds.split(",")], int(max_bytes))
    return True


def env_value(fds: list[int], max_bytes: int) -> str:
    return f"{max_bytes}:{','.join(map(str, fds))}"


def active() -> bool:
    return _installed is not None


def close() -> None:
    """The replica is ending: write out partial lines and what is still in the pipes. Later
    writes to fd 1 and 2 go to the file unstamped; `sys.stdout` and `sys.stderr` still stamp."""
    global _installed
    if _installed is None or not _installed[0].local:
        return
    sink, pump, streams = _installed
    _installed = None
    for stream in streams:
        stream.end()
    os.dup2(sink.fds[0], 1)
    os.dup2(sink.fds[0], 2)
    pump.finish()
