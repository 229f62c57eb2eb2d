"""Reading replica logs: the lines `lepton.runtime.logstamp` writes, merged by time across
replicas, filtered by replica and age, from the end of the files (`tail`) and as they grow
(`poll`).

Every line served has the shape the replicas write, `TIME REPLICA STREAM [trace=ID] TEXT`.
A line of a replica's file that lacks its stamp (written before the replica stamped its
output, or by a process of it at exit) is served with stream `-` and, as its time, an upper
bound: that of the next stamped line, or of when it was read. Knative's pod lines come the
same way, stream `-` (the Kubernetes API merges stdout and stderr), with the API's time.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections import deque
from collections.abc import Generator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from lepton.runtime.logstamp import stamp

BLOCK = 64 << 10
HEAD = 64  # bytes of a file's start that tell a follower it was rotated
STAMPED = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (\S+) (\S+) (?:trace=(\w+) )?")
FILE = re.compile(r"(.+)\.log(?:\.(\d+))?")
DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RFC3339 = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")


class Record(NamedTuple):
    """One stamped line's fields."""

    time: str
    replica: str
    stream: str
    trace: str | None
    message: str


def parse(line: bytes | str) -> Record | None:
    """The fields of a stamped line, or None for a line without a stamp."""
    data = line.encode() if isinstance(line, str) else line
    match = STAMPED.match(data)
    if match is None:
        return None
    message = data[match.end() :].rstrip(b"\n").decode(errors="replace")
    trace = None if match[4] is None else match[4].decode()
    return Record(match[1].decode(), match[2].decode(), match[3].decode(), trace, message)


def line_time(line: bytes) -> bytes | None:
    """The stamp of a stamped line, which sorts by time as bytes."""
    return line[:24] if STAMPED.match(line) else None


def unstamped(when: bytes, replica: str, text: bytes) -> bytes:
    """A line without a stamp, given one (stream `-`)."""
    return b"%s %s - %s\n" % (when, replica.encode(), text.rstrip(b"\n"))


def parse_since(text: str, now: float) -> float:
    """The time (epoch seconds) that `--since` means: a duration back from `now` (30s, 10m,
    2h, 1d, 1h30m) or an RFC 3339 time. ValueError says what is wrong with it."""
    text = text.strip()
    parts = DURATION.findall(text)
    if parts and "".join(number + unit for number, unit in parts) == text:
        return max(0.0, now - sum(float(number) * UNITS[unit] for number, unit in parts))
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since {text!r} is neither a duration (30s, 10m, 2h, 1d, 1h30m) nor an RFC 3339 time (2026-12-02T09:41:42Z)"
        ) from None
    if when.tzinfo is None:
        raise ValueError(f"since {text!r} has no time zone: add Z for UTC, or an offset such as +01:00")
    return max(0.0, when.timestamp())


def api_time(text: bytes) -> bytes | None:
    """An RFC 3339 time (say the Kubernetes API's, in nanoseconds) as a line's stamp."""
    match = RFC3339.fullmatch(text)
    if match is not None:
        return b"%s.%sZ" % (match[1], (match[2] or b"")[:3].ljust(3, b"0"))
    try:
        return stamp(datetime.fromisoformat(text.decode()).timestamp()).encode()
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass(frozen=True)
class LogQuery:
    """What `lepton logs` asks for: the last `tail` lines of the replicas whose id starts with
    `replica`, none older than `since` (epoch seconds), then new ones while `follow`."""

    tail: int = 200
    follow: bool = False
    replica: str | None = None
    since: float | None = None

    @property
    def cutoff(self) -> bytes | None:
        return stamp(self.since).encode() if self.since is not None else None


def replica_files(folder: Path, prefix: str | None = None) -> dict[str, list[Path]]:
    """The files of each replica under a function's log folder (of those whose id starts with
    `prefix`), newest first: `<id>.log`, `<id>.log.1`, ..."""
    found: dict[str, list[tuple[int, Path]]] = {}
    try:
        entries = os.scandir(folder)
    except FileNotFoundError:
        return {}
    with entries:
        for entry in entries:
            match = FILE.fullmatch(entry.name)
            if match and (not prefix or match[1].startswith(prefix)):
                found.setdefault(match[1], []).append((int(match[2] or 0), Path(entry.path)))
    return {replica: [path for _, path in sorted(files)] for replica, files in sorted(found.items())}


def drop_empty(paths: list[Path]) -> None:
    """Remove the rotated files a replica never filled (its platform made them in advance)."""
    for path in paths[1:]:
        try:
            if path.stat().st_size == 0:
                path.unlink()
        except OSError:
            continue


def backwards(path: Path, end: int | None = None) -> Generator[bytes, None, None]:
    """The complete lines of a file up to `end`, last first, read a block at a time from the
    end (a chatty replica's file is large); a partial last line is left out."""
    with path.open("rb") as fh:
        position = fh.seek(0, 2) if end is None else end
        rest: bytes | None = None  # the start of a line whose beginning is in an earlier block, newline included
        while position > 0:
            step = min(BLOCK, position)
            position -= step
            fh.seek(position)
            data = fh.read(step)
            if rest is None:
                cut = data.rfind(b"\n")
                if cut < 0:
                    continue
                data, rest = data[: cut + 1], b""
            pieces = (data + rest).split(b"\n")
            rest = pieces[0] + b"\n"
            for piece in reversed(pieces[1:-1]):
                if piece:
                    yield piece + b"\n"
        if rest and rest != b"\n":
            yield rest


def last_messages(path: Path, count: int) -> list[str]:
    """The text of a replica's last `count` lines, without their stamps (for error messages)."""
    try:
        with closing(backwards(path)) as lines:
            found = [line for line, _ in zip(lines, range(count))]
    except OSError:
        return []
    return [record.message if (record := parse(line)) else line.rstrip(b"\n").decode(errors="replace") for line in reversed(found)]


@dataclass
class _Cursor:
    """How far a follower has read a replica's `.log`."""

    offset: int = 0
    head: bytes = b""
    mtime: int = -1


class LogReader:
    """One function's replica logs under `folder`: `tail` first, then `poll` for new lines."""

    def __init__(self, folder: Path, replica: str | None = None, cutoff: bytes | None = None) -> None:
        self.folder = folder
        self.prefix = replica
        self.cutoff = cutoff
        self.cursors: dict[str, _Cursor] = {}

    def replicas(self) -> dict[str, list[Path]]:
        return replica_files(self.folder, self.prefix)

    def tail(self, count: int) -> list[bytes]:
        """The last `count` lines across replicas, in time order; `poll` goes on from there."""
        found = []
        for replica, files in self.replicas().items():
            cursor = self.cursors[replica] = _Cursor()
            try:
                with files[0].open("rb") as fh:
                    stat = os.fstat(fh.fileno())
                    cursor.offset, cursor.mtime = _whole_lines_end(fh.fileno(), stat.st_size), stat.st_mtime_ns
                    cursor.head = os.pread(fh.fileno(), HEAD, 0)
            except OSError:
                continue
            if count:
                found.append(self._replica_tail(replica, files, cursor.offset, count))
        merged = deque(heapq.merge(*found, key=lambda line: line[0]), maxlen=count) if count else ()
        return [text for _, text in merged]

    def _replica_tail(self, replica: str, files: list[Path], end: int, count: int) -> list[tuple[bytes, bytes]]:
        newest_first: list[tuple[bytes, bytes]] = []
        for path, limit in zip(files, (end, *[None] * (len(files) - 1))):
            try:
                later = stamp(path.stat().st_mtime).encode()  # the time of a line without a stamp: an upper bound
                with closing(backwards(path, limit)) as lines:
                    for text in lines:
                        when = line_time(text)
                        if when is None:
                            when, text = later, unstamped(later, replica, text)
                        later = when
                        if self.cutoff and when < self.cutoff:
                            return newest_first[::-1]
                        newest_first.append((when, text))
                        if len(newest_first) >= count:
                            return newest_first[::-1]
            except OSError:
                continue
        return newest_first[::-1]

    def poll(self) -> list[bytes]:
        """Lines written since the last `tail` or `poll` (all of a replica first seen now), in
        time order. A `.log` that was rotated meanwhile is read on in `.log.1`, where its old
        text now is."""
        found: list[tuple[bytes, bytes]] = []
        seen = stamp(time.time()).encode()
        for replica, files in self.replicas().items():
            cursor = self.cursors.setdefault(replica, _Cursor())
            try:
                stat = files[0].stat()
                if stat.st_size == cursor.offset and stat.st_mtime_ns == cursor.mtime:
                    continue
                chunks = self._read_new(files, cursor)
            except OSError:
                continue
            for chunk in chunks:
                for text in chunk.splitlines(keepends=True):
                    when = line_time(text)
                    if when is None:
                        if not text.strip():
                            continue
                        when, text = seen, unstamped(seen, replica, text)
                    if not self.cutoff or when >= self.cutoff:
                        found.append((when, text))
        found.sort(key=lambda line: line[0])
        return [text for _, text in found]

    def _read_new(self, files: list[Path], cursor: _Cursor) -> list[bytes]:
        chunks = []
        with files[0].open("rb") as fh:
            stat = os.fstat(fh.fileno())
            if stat.st_size < cursor.offset or os.pread(fh.fileno(), len(cursor.head), 0) != cursor.head:
                older = Path(f"{files[0]}.1")
                if older in files:
                    with older.open("rb") as old:
                        old.seek(cursor.offset)
                        chunks.append(_complete(old.read()))
                cursor.offset = 0
            data = os.pread(fh.fileno(), stat.st_size - cursor.offset, cursor.offset)
            data = _complete(data)
            cursor.offset += len(data)
            cursor.mtime = stat.st_mtime_ns
            cursor.head = os.pread(fh.fileno(), HEAD, 0)
        chunks.append(data)
        return chunks


def _whole_lines_end(fd: int, size: int) -> int:
    """Where the file's last complete line ends (a partial line after it is read once whole)."""
    position = size
    while position > 0:
        step = min(BLOCK, position)
        position -= step
        cut = os.pread(fd, step, position).rfind(b"\n")
        if cut >= 0:
            return position + cut + 1
    return 0


def _complete(data: bytes) -> bytes:
    """`data` up to its last newline: a partial line is read once it is whole."""
    return data[: data.rfind(b"\n") + 1]
