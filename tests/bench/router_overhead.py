"""Router overhead: invoking through the platform's `/fn/{name}` vs calling the same replica
directly on its Unix socket, in one run with alternating rounds, 8 keep-alive clients.

Goal: at most +0.3 ms p50 and at least 0.85x the requests/s.

    python tests/bench/router_overhead.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import load_parser, Platform, Result, run_load  # noqa: E402

APP = Path(__file__).resolve().parent / "apps" / "lepton_add.py"
BODY = b'{"a": 40, "b": 2}'


def main() -> None:
    args = load_parser(__doc__).parse_args()

    platform = Platform()
    results: dict[str, list[Result]] = {"direct": [], "router": []}
    try:
        platform.deploy(APP)
        auth = {"Authorization": f"Bearer {platform.api.token}"}
        run_load(platform.url + "/fn/add", BODY, clients=1, seconds=0.3, headers=auth)  # wake it
        (replica,) = platform.info("add")["replica_details"]
        targets = {
            "direct": dict(url="http://replica/", uds=replica["socket"]),
            "router": dict(url=platform.url + "/fn/add", headers=auth),
        }
        for name, target in targets.items():  # warm-up
            run_load(body=BODY, clients=args.clients, seconds=0.5, **target)
        for _ in range(args.rounds):
            for name, target in targets.items():
                results[name].append(run_load(body=BODY, clients=args.clients, seconds=args.seconds, **target))
        assert len(platform.info("add")["replica_details"]) == 1, "the function scaled out; the comparison needs one replica"
    finally:
        platform.close()

    merged = {k: Result([x for r in v for x in r.latencies], sum(r.seconds for r in v), sum(r.errors for r in v)) for k, v in results.items()}
    direct, router = merged["direct"], merged["router"]
    print(f"{args.clients} keep-alive clients, {args.rounds} x {args.seconds:g}s alternating rounds, one replica")
    print(direct.line("  replica directly (uds)"))
    print(router.line("  through /fn/add"))
    print(f"  router adds p50 {router.pct(50) - direct.pct(50):+.3f} ms, p99 {router.pct(99) - direct.pct(99):+.3f} ms; "
          f"req/s ratio {router.rps / direct.rps:.3f}x   (goals: <= +0.3 ms p50, >= 0.85x)")


if __name__ == "__main__":
    main()
