"""Replica logs: the stamped line format, rotation by the writer, and reading them back
(tail, merge by time, filters, follow across a rotation) with no platform running."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lepton.runtime import logstamp, tracing
from lepton.runtime.logstamp import LINE_MAX, LogSink, StampedStream
from lepton_platform.logfiles import LogQuery, LogReader, api_time, backwards, last_messages, parse, parse_since, replica_files

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
NOW = datetime(2026, 12, 2, 9, 41, 42, 123000, tzinfo=UTC).timestamp()


def sink_for(path: Path, keep: int = 2, max_bytes: int = 0, replica: str = "fn-00001-ab1") -> LogSink:
    return LogSink(replica, logstamp.open_files(path, keep), max_bytes)


def close(sink: LogSink) -> None:
    for fd in sink.fds:
        os.close(fd)


# -- the format ---------------------------------------------------------------------------------


def test_a_line_has_time_replica_stream_trace_and_text(tmp_path):
    sink = sink_for(tmp_path / "r.log")
    sink.write("out", [b"plain", b"with  two spaces "])
    sink.write("err", [b"traced"], TRACE)
    sink.write("out", [b"bad trace"], "not hex at all")
    close(sink)
    lines = (tmp_path / "r.log").read_bytes().splitlines()
    records = [parse(line) for line in lines]
    assert [(r.replica, r.stream, r.trace, r.message) for r in records] == [
        ("fn-00001-ab1", "out", None, "plain"),
        ("fn-00001-ab1", "out", None, "with  two spaces "),
        ("fn-00001-ab1", "err", TRACE, "traced"),
        ("fn-00001-ab1", "out", None, "bad trace"),
    ]
    for record in records:
        assert len(record.time) == 24 and record.time.endswith("Z")
        assert abs(datetime.fromisoformat(record.time).timestamp() - datetime.now(UTC).timestamp()) < 60
    assert parse(b"Traceback (most recent call last):") is None
    assert logstamp.stamp(NOW) == "2026-12-02T09:41:42.123Z"


@pytest.mark.parametrize(
    ("text", "seconds_back"), [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("1.5h", 5400), ("0s", 0)]
)
def test_since_takes_durations(text, seconds_back):
    assert parse_since(text, NOW) == pytest.approx(NOW - seconds_back)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-12-02T09:41:42Z", "2026-12-02T09:41:42.000Z"), ("2026-12-02T10:41:42.5+01:00", "2026-12-02T09:41:42.500Z")],
)
def test_since_takes_rfc3339_times(text, expected):
    assert logstamp.stamp(parse_since(text, NOW)) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("10x", "neither a duration"),
        ("10", "neither a duration"),
        ("-5m", "neither a duration"),
        ("5m ago", "neither a duration"),
        ("2026-12-02T09:41:42", "no time zone"),
    ],
)
def test_since_names_what_is_wrong(text, problem):
    with pytest.raises(ValueError, match=problem) as caught:
        parse_since(text, NOW)
    assert repr(text) in str(caught.value)


def test_api_times_become_stamps():
    assert api_time(b"2026-12-02T09:41:42.123456789Z") == b"2026-12-02T09:41:42.123Z"
    assert api_time(b"2026-12-02T09:41:42Z") == b"2026-12-02T09:41:42.000Z"
    assert api_time(b"2026-12-02T10:41:42.5+01:00") == b"2026-12-02T09:41:42.500Z"
    assert api_time(b"hello") is None


# -- rotation -----------------------------------------------------------------------------------


def test_rotation_keeps_each_file_under_the_limit_and_the_newest_in_dot_log(tmp_path):
    path = tmp_path / "r.log"
    sink = sink_for(path, keep=2, max_bytes=4096)
    for n in range(500):
        sink.write("out", [b"line %04d %s" % (n, b"x" * 60)])
    close(sink)
    files = logstamp.rotated_paths(path, 2)
    sizes = [p.stat().st_size for p in files]
    assert all(0 < size <= 4096 for size in sizes), sizes
    numbers = [[int(parse(line).message.split()[1]) for line in p.read_bytes().splitlines()] for p in files]
    newest, older, oldest = numbers
    assert newest[-1] == 499 and older[-1] + 1 == newest[0] and oldest[-1] + 1 == older[0], "no line lost between files"
    assert sorted(tmp_path.iterdir()) == sorted(files), "no other files: the writer copies, it cannot create"


def test_keep_zero_truncates_and_a_long_line_gets_a_file_of_its_own(tmp_path):
    path = tmp_path / "r.log"
    sink = sink_for(path, keep=0, max_bytes=4096)
    for n in range(100):
        sink.write("out", [b"%d %s" % (n, b"y" * 100)])
    sink.write("out", [b"z" * 10_000])
    sink.write("out", [b"after"])
    close(sink)
    assert list(tmp_path.iterdir()) == [path]
    assert [parse(line).message for line in path.read_bytes().splitlines()] == ["after"]


# -- sys.stdout and sys.stderr --------------------------------------------------------------------


def test_streams_write_whole_lines_with_the_writers_trace(tmp_path):
    sink = sink_for(tmp_path / "r.log")
    out = StampedStream(sink, "out", io.StringIO())
    print("one", "two", file=out)
    out.write("partial ")
    out.flush()  # does not cut the line
    token = tracing.trace_id.set(TRACE)
    try:
        out.write("and the rest\nnext\n")
    finally:
        tracing.trace_id.reset(token)
    out.write("x" * (LINE_MAX + 10))
    out.write("unfinished")
    out.end()
    close(sink)
    records = [parse(line) for line in (tmp_path / "r.log").read_bytes().splitlines()]
    assert [(r.trace, r.message) for r in records] == [
        (None, "one two"),
        (TRACE, "partial and the rest"),
        (TRACE, "next"),
        (None, "x" * LINE_MAX),
        (None, "x" * 10 + "unfinished"),
    ]


def test_install_stamps_every_writer_and_close_loses_nothing(tmp_path):
    """In a process of its own: `install` takes over fd 1 and 2."""
    script = textwrap.dedent(f"""
        import logging, os, subprocess, sys
        from pathlib import Path
        from lepton.runtime import logstamp, tracing
        logstamp.install("fn-00001-ab1", logstamp.open_files(Path({str(tmp_path / "r.log")!r}), 1), 0)
        logging.basicConfig(level="INFO", format="%(levelname)s %(name)s: %(message)s")
        print("printed")
        logging.getLogger("mine").warning("logged")
        os.write(1, b"fd one\\n")
        os.write(2, b"fd two\\n")
        subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
        tracing.trace_id.set({TRACE!r})
        print("traced")
        try:
            1 / 0
        except ZeroDivisionError:
            logging.exception("failed")
        sys.stdout.write("no newline")
        os.write(1, b"fd no newline")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done
    records = [parse(line) for line in (tmp_path / "r.log").read_bytes().splitlines()]
    assert all(records), (tmp_path / "r.log").read_text()
    got = {(r.stream, r.trace, r.message) for r in records}
    assert {
        ("out", None, "printed"),
        ("err", None, "WARNING mine: logged"),
        ("out", None, "fd one"),
        ("err", None, "fd two"),
        ("out", None, "child process"),
        ("out", TRACE, "traced"),
        ("err", TRACE, "ERROR root: failed"),
        ("err", TRACE, "ZeroDivisionError: division by zero"),
        ("out", TRACE, "no newline"),
        ("out", None, "fd no newline"),
    } <= got
    times = [r.time for r in records]
    assert times == sorted(times), "the file is in time order"


# -- reading ------------------------------------------------------------------------------------


def write(path: Path, replica: str, lines: list[tuple[str, str]]) -> None:
    with path.open("ab") as fh:
        for when, text in lines:
            fh.write(f"{when} {replica} out {text}\n".encode())


def at(second: int) -> str:
    return f"2026-12-02T09:41:{second:02d}.000Z"


def test_tail_merges_replicas_by_time_and_keeps_the_last_lines_overall(tmp_path):
    write(tmp_path / "fn-00001-a1.log.1", "fn-00001-a1", [(at(0), "a0"), (at(2), "a2")])
    write(tmp_path / "fn-00001-a1.log", "fn-00001-a1", [(at(4), "a4"), (at(6), "a6")])
    write(tmp_path / "fn-00002-b2.log", "fn-00002-b2", [(at(1), "b1"), (at(3), "b3"), (at(5), "b5")])
    (tmp_path / "fn-00002-b2.log.1").touch()
    (tmp_path / "template.txt").touch()
    assert replica_files(tmp_path) == {
        "fn-00001-a1": [tmp_path / "fn-00001-a1.log", tmp_path / "fn-00001-a1.log.1"],
        "fn-00002-b2": [tmp_path / "fn-00002-b2.log", tmp_path / "fn-00002-b2.log.1"],
    }

    def messages(reader: LogReader, count: int) -> list[str]:
        return [parse(line).message for line in reader.tail(count)]

    assert messages(LogReader(tmp_path), 100) == ["a0", "b1", "a2", "b3", "a4", "b5", "a6"]
    assert messages(LogReader(tmp_path), 3) == ["a4", "b5", "a6"]
    assert messages(LogReader(tmp_path), 0) == []
    assert messages(LogReader(tmp_path, "fn-00002"), 100) == ["b1", "b3", "b5"]
    assert messages(LogReader(tmp_path, "fn-00001-a1"), 100) == ["a0", "a2", "a4", "a6"]
    assert LogReader(tmp_path, "fn-00003").replicas() == {}
    assert messages(LogReader(tmp_path, cutoff=at(3).encode()), 100) == ["b3", "a4", "b5", "a6"]
    assert LogQuery(since=NOW).cutoff == b"2026-12-02T09:41:42.123Z"


def test_unstamped_lines_come_stamped_and_a_partial_line_waits(tmp_path):
    path = tmp_path / "fn-00001-a1.log"
    path.write_bytes(b"Traceback (most recent call last):\n")
    write(path, "fn-00001-a1", [(at(7), "stamped")])
    with path.open("ab") as fh:
        fh.write(b"half a li")
    reader = LogReader(tmp_path)
    assert reader.tail(10) == [
        f"{at(7)} fn-00001-a1 - Traceback (most recent call last):\n".encode(),
        f"{at(7)} fn-00001-a1 out stamped\n".encode(),
    ]
    assert reader.poll() == []
    with path.open("ab") as fh:
        fh.write(b"ne\n")
    [line] = reader.poll()
    assert line.endswith(b" fn-00001-a1 - half a line\n") and parse(line).stream == "-"
    assert last_messages(path, 2) == ["stamped", "half a line"]


def test_backwards_reads_long_lines_across_blocks(tmp_path):
    path = tmp_path / "f"
    lines = [b"a" * 100_000 + b"\n", b"\n", b"b\n", b"c" * 70_000 + b"\n", b"tail without newline"]
    path.write_bytes(b"".join(lines))
    assert list(backwards(path)) == [lines[3], lines[2], lines[0]]
    assert list(backwards(path, end=len(lines[0]))) == [lines[0]]


def test_poll_follows_new_replicas_and_rotations(tmp_path):
    first = sink_for(tmp_path / "fn-00001-a1.log", keep=1, max_bytes=4096, replica="fn-00001-a1")
    first.write("out", [b"before"])
    reader = LogReader(tmp_path)
    assert [parse(line).message for line in reader.tail(10)] == ["before"]
    assert reader.poll() == []
    numbers = [b"%03d %s" % (n, b"z" * 40) for n in range(60)]  # about 5 KiB: one rotation, then past the old offset
    first.write("out", numbers[:30])
    first.write("out", numbers[30:])
    second = sink_for(tmp_path / "fn-00001-b2.log", keep=1, replica="fn-00001-b2")
    second.write("err", [b"new replica"])
    got = [parse(line) for line in reader.poll()]
    assert [r.message for r in got if r.replica == "fn-00001-a1"] == [n.decode() for n in numbers]
    assert [r.message for r in got if r.replica == "fn-00001-b2"] == ["new replica"]
    assert [r.time for r in got] == sorted(r.time for r in got)
    assert reader.poll() == []
    close(first)
    close(second)
