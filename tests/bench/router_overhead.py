"""Router overhead: invoking through the platform's `/fn/{name}` vs calling the same replica
directly on its Unix socket, in one run with alternating rounds, 8 keep-alive clients.

Two replicas of the same trivial handler: `add-async` (apps/lepton_add_async.py) answers on its
event loop, the fastest and steadiest a replica gets, so what changes is the hop; `add`
(apps/lepton_add.py) is sync, so each call also hops to a thread in the replica, which costs
more when the replica idles between requests, as it does behind any relay. For scale, each is
also called through `apps/byte_pipe.py`, a relay with no logic at all: the least any extra hop
in Python costs on this machine. The router is also called with an access key instead of the
admin token (`lepton keys create`), to show what checking a key costs. Many short rounds, as this machine's speed drifts from second
to second; each router round's ratio to the direct round just before it is printed too.

Goal: at most +0.3 ms p50 and at least 0.85x the requests/s.

    python tests/bench/router_overhead.py [--seconds 2] [--rounds 6]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform, Result, free_port, load_parser, python, run_load, wait_ready

APPS = Path(__file__).resolve().parent / "apps"
FUNCTIONS = {"add-async": APPS / "lepton_add_async.py", "add": APPS / "lepton_add.py"}
BODY = b'{"a": 40, "b": 2}'
WAYS = ("direct", "router", "key", "pipe")


def main() -> None:
    parser = load_parser(__doc__)
    parser.set_defaults(seconds=2.0, rounds=6)
    args = parser.parse_args()

    platform = Platform()
    pipes = []
    targets: dict[tuple[str, str], dict] = {}
    cpus: dict[str, list[int]] = {}
    try:
        auth = {"Authorization": f"Bearer {platform.api.token}"}
        key = None
        for name, app in FUNCTIONS.items():
            platform.deploy(app)
            run_load(f"{platform.url}/fn/{name}", BODY, clients=1, seconds=0.3, headers=auth)  # wake it
            (replica,) = platform.info(name)["replica_details"]
            cpus[name] = replica["cpus"]
            port = free_port()
            pipes.append(python(str(APPS / "byte_pipe.py"), replica["socket"], str(port)))
            wait_ready(f"http://127.0.0.1:{port}/healthz", pipes[-1])
            targets[name, "direct"] = dict(url="http://replica/", uds=replica["socket"])
            targets[name, "router"] = dict(url=f"{platform.url}/fn/{name}", headers=auth)
            key = key or platform.api.request("POST", "/v1/keys", json={}).json()["key"]
            targets[name, "key"] = dict(url=f"{platform.url}/fn/{name}", headers={"Authorization": f"Bearer {key}"})
            targets[name, "pipe"] = dict(url=f"http://127.0.0.1:{port}/")
        results: dict[tuple[str, str], list[Result]] = {key: [] for key in targets}
        for target in targets.values():  # warm-up
            run_load(body=BODY, clients=args.clients, seconds=0.5, **target)
        for _ in range(args.rounds):
            for key, target in targets.items():
                results[key].append(run_load(body=BODY, clients=args.clients, seconds=args.seconds, **target))
        for name in FUNCTIONS:
            assert len(platform.info(name)["replica_details"]) == 1, f"{name} scaled out; the comparison needs one replica"
    finally:
        for pipe in pipes:
            pipe.kill()
        platform.close()

    print(f"{args.clients} keep-alive clients, {args.rounds} x {args.seconds:g}s alternating rounds")
    for name in FUNCTIONS:
        report(name, cpus[name], {way: results[name, way] for way in WAYS})


def report(name: str, cpus: list[int], rounds: dict[str, list[Result]]) -> None:
    merged = {
        way: Result([x for r in v for x in r.latencies], sum(r.seconds for r in v), sum(r.errors for r in v)) for way, v in rounds.items()
    }
    direct, router, keyed, floor = merged["direct"], merged["router"], merged["key"], merged["pipe"]
    paired = sorted(r.rps / d.rps for r, d in zip(rounds["router"], rounds["direct"]))
    print(f"{name}: one replica on cpus {cpus}")
    print(direct.line("  replica directly (uds)"))
    print(router.line(f"  through /fn/{name}"))
    print(keyed.line(f"  through /fn/{name}, key"))
    print(floor.line("  through a bare byte pipe"))
    print(
        f"  router adds p50 {router.pct(50) - direct.pct(50):+.3f} ms, p99 {router.pct(99) - direct.pct(99):+.3f} ms; "
        f"req/s ratio {router.rps / direct.rps:.3f}x   (goals: <= +0.3 ms p50, >= 0.85x)"
    )
    print(f"  req/s ratio by round: {' '.join(f'{x:.2f}' for x in paired)}")
    print(f"  an access key instead of the admin token: p50 {keyed.pct(50) - router.pct(50):+.3f} ms, req/s {keyed.rps / router.rps:.3f}x")
    print(
        f"  byte pipe adds p50 {floor.pct(50) - direct.pct(50):+.3f} ms; req/s ratio {floor.rps / direct.rps:.3f}x; "
        f"router vs byte pipe {router.rps / floor.rps:.3f}x"
    )


if __name__ == "__main__":
    main()
