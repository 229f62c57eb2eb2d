"""Batching: the `digits` classifier with batching on (`digits`, batch=32, 4 ms) and off
(`digits-single`, the same model and code) through the platform, 32 concurrent clients, in
one run with alternating rounds.

Goal: batching on gives at least 4x the requests/s with a p99 no worse.

    python tests/bench/batching.py [--seconds 3] [--rounds 3] [--clients 32]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform, Result, load_parser, run_load

DIGITS = Path(__file__).resolve().parents[2] / "functions" / "digits" / "main.py"


def main() -> None:
    parser = load_parser(__doc__)
    parser.set_defaults(clients=32)
    args = parser.parse_args()
    from sklearn.datasets import load_digits

    body = json.dumps({"image": load_digits().images[0].tolist()}).encode()
    platform = Platform()
    results: dict[str, list[Result]] = {"digits": [], "digits-single": []}
    try:
        platform.deploy(DIGITS)
        for name in results:  # wake and warm both
            run_load(f"{platform.url}/fn/{name}", body, clients=args.clients, seconds=1.0)
        for _ in range(args.rounds):
            for name in results:
                results[name].append(run_load(f"{platform.url}/fn/{name}", body, clients=args.clients, seconds=args.seconds))
        replicas = {name: platform.info(name)["replicas"] for name in results}
    finally:
        platform.close()

    merged = {
        k: Result([x for r in v for x in r.latencies], sum(r.seconds for r in v), sum(r.errors for r in v)) for k, v in results.items()
    }
    on, off = merged["digits"], merged["digits-single"]
    print(f"digits classifier through the platform, {args.clients} clients, {args.rounds} x {args.seconds:g}s alternating rounds")
    print(on.line("  batching on  (digits)"), f"  replicas at the end: {replicas['digits']}")
    print(off.line("  batching off (digits-single)"), f"  replicas at the end: {replicas['digits-single']}")
    print(
        f"  throughput {on.rps / off.rps:.2f}x with batching; p99 {on.pct(99):.1f} ms vs {off.pct(99):.1f} ms "
        f"({'no worse' if on.pct(99) <= off.pct(99) else 'worse'})   goal >= 4x, p99 no worse"
    )


if __name__ == "__main__":
    main()
