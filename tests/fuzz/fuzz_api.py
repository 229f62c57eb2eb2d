"""Fuzz the platform's API from its own OpenAPI with schemathesis: every operation, generated
valid and invalid inputs, and the check that no response is a 5xx.

    python tests/fuzz/fuzz_api.py [--max-examples 100] [--seed N]

Starts a platform in a temporary LEPTON_HOME with sample functions and a bucket deployed, so
the operations reach real objects too. `GET .../logs` is left out: with follow=true it streams
until the client hangs up, which a fuzzer reads as a timeout (tests/embedded/test_bad_input.py
covers its parameters). The slow test tests/embedded/test_fuzz.py runs a bounded version.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform

SAMPLE = Path(__file__).resolve().parents[1] / "functions" / "platform" / "app.py"


def fuzz(max_examples: int, seed: int | None = None) -> subprocess.CompletedProcess:
    platform = Platform("--no-fork")
    try:
        platform.deploy(SAMPLE)
        platform.api.request("PUT", "/v1/buckets/fuzz")
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{platform.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {platform.api.token}",
            "--checks",
            "not_a_server_error",
            "--phases",
            "examples,fuzzing",
            "--max-examples",
            str(max_examples),
            "--exclude-path-regex",
            "/logs$",
            "--request-timeout",
            "20",
            "--no-color",
        ]
        if seed is not None:
            command += ["--seed", str(seed)]
        return subprocess.run(command, capture_output=True, text=True, timeout=900)
    finally:
        platform.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    result = fuzz(args.max_examples, args.seed)
    print(result.stdout[-6000:])
    print(result.stderr[-2000:], file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
