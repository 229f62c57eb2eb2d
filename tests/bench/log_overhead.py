"""Log stamping overhead: a trivial handler under load, printing one line per call or not, with
its output stamped into a rotated file (logstamp.py, as in a replica) or sent plainly to a file.

Each variant runs in its own `python -m lepton.runtime` process; rounds alternate so machine
noise hits all alike. Prints req/s and p50/p99 per variant, and the file each one wrote.

    python tests/bench/log_overhead.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from lepton.runtime import logstamp
from tests.bench.load import ROOT, Result, free_port, load_parser, median, run_load, wait_ready

APP = Path(__file__).resolve().parent / "apps" / "lepton_print.py"
BODY = b'{"a": 40, "b": 2}'
VARIANTS = {
    "quiet, stamped": ("quiet", True),
    "quiet, plain file": ("quiet", False),
    "print, plain file": ("chatty", False),
    "print, stamped": ("chatty", True),
}


def start(function: str, stamped: bool, port: int, log: Path) -> subprocess.Popen:
    """Like a replica the platform starts as a fresh process (stamped), or with stdout simply
    redirected to a file."""
    fds = logstamp.open_files(log, 2)
    env = {**os.environ, "LEPTON_REPLICA": "bench-00001-a1", logstamp.ENV: logstamp.env_value(fds, 10 << 20)} if stamped else os.environ
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "lepton.runtime", f"{APP}:{function}", "--port", str(port), "--log-level", "warning"],
            cwd=ROOT,
            stdout=fds[0],
            stderr=fds[0],
            pass_fds=fds if stamped else (),
            env=env,
        )
    finally:
        for fd in fds:
            os.close(fd)


def main() -> None:
    args = load_parser(__doc__).parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lepton-log-bench-"))
    servers = {}
    for name, (function, stamped) in VARIANTS.items():
        port = free_port()
        log = folder / f"{function}-{'stamped' if stamped else 'plain'}.log"
        servers[name] = (start(function, stamped, port, log), f"http://127.0.0.1:{port}", log)
        wait_ready(servers[name][1] + "/healthz", servers[name][0])
    results: dict[str, list[Result]] = {name: [] for name in servers}
    try:
        for _, url, _ in servers.values():
            run_load(url + "/", BODY, clients=args.clients, seconds=0.5)
        for _ in range(args.rounds):
            for name, (_, url, _) in servers.items():
                results[name].append(run_load(url + "/", BODY, clients=args.clients, seconds=args.seconds))
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait()
    print(f"{'variant':<20} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  log")
    for name, runs in results.items():
        log = servers[name][2]
        print(
            f"{name:<20} {median([r.rps for r in runs]):>8.0f} {median([r.pct(50) for r in runs]):>8.3f} "
            f"{median([r.pct(99) for r in runs]):>8.3f}  {log} ({log.stat().st_size} bytes)"
        )


if __name__ == "__main__":
    main()
