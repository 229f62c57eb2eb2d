"""Router overhead: invoking through the platform's `/fn/{name}` vs calling the same replica
directly on its Unix socket, in one run with alternating rounds, 8 keep-alive clients. For
scale, the same calls also go through `apps/byte_pipe.py`, a relay with no logic at all: the
least any extra hop in Python costs on this machine.

Goal: at most +0.3 ms p50 and at least 0.85x the requests/s.

    python tests/bench/router_overhead.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import free_port, load_parser, Platform, python, Result, run_load, wait_ready  # noqa: E402

APPS = Path(__file__).resolve().parent / "apps"
APP = APPS / "lepton_add.py"
BODY = b'{"a": 40, "b": 2}'


def main() -> None:
    args = load_parser(__doc__).parse_args()

    platform = Platform()
    pipe = None
    results: dict[str, list[Result]] = {"direct": [], "router": [], "pipe": []}
    try:
        platform.deploy(APP)
        auth = {"Authorization": f"Bearer {platform.api.token}"}
        run_load(platform.url + "/fn/add", BODY, clients=1, seconds=0.3, headers=auth)  # wake it
        (replica,) = platform.info("add")["replica_details"]
        port = free_port()
        pipe = python(str(APPS / "byte_pipe.py"), replica["socket"], str(port))
        wait_ready(f"http://127.0.0.1:{port}/healthz", pipe)
        targets = {
            "direct": dict(url="http://replica/", uds=replica["socket"]),
            "router": dict(url=platform.url + "/fn/add", headers=auth),
            "pipe": dict(url=f"http://127.0.0.1:{port}/"),
        }
        for name, target in targets.items():  # warm-up
            run_load(body=BODY, clients=args.clients, seconds=0.5, **target)
        for _ in range(args.rounds):
            for name, target in targets.items():
                results[name].append(run_load(body=BODY, clients=args.clients, seconds=args.seconds, **target))
        assert len(platform.info("add")["replica_details"]) == 1, "the function scaled out; the comparison needs one replica"
    finally:
        if pipe is not None:
            pipe.kill()
        platform.close()

    merged = {k: Result([x for r in v for x in r.latencies], sum(r.seconds for r in v), sum(r.errors for r in v)) for k, v in results.items()}
    direct, router, floor = merged["direct"], merged["router"], merged["pipe"]
    print(f"{args.clients} keep-alive clients, {args.rounds} x {args.seconds:g}s alternating rounds, one replica on cpus {replica['cpus']}")
    print(direct.line("  replica directly (uds)"))
    print(router.line("  through /fn/add"))
    print(floor.line("  through a bare byte pipe"))
    print(f"  router adds p50 {router.pct(50) - direct.pct(50):+.3f} ms, p99 {router.pct(99) - direct.pct(99):+.3f} ms; "
          f"req/s ratio {router.rps / direct.rps:.3f}x   (goals: <= +0.3 ms p50, >= 0.85x)")
    print(f"  byte pipe adds p50 {floor.pct(50) - direct.pct(50):+.3f} ms; req/s ratio {floor.rps / direct.rps:.3f}x; "
          f"router vs byte pipe {router.rps / floor.rps:.3f}x")


if __name__ == "__main__":
    main()
