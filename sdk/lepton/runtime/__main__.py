"""`python -m lepton.runtime FILE[:NAME] | --artifact PATH --function NAME`: serve one function.

This is what a replica process and the Knative runtime image run. It uses argparse, not the
CLI, to keep the cold-start import path short.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lepton.runtime", description=__doc__)
    parser.add_argument("target", nargs="?", help="FILE[:NAME] of the function to serve")
    parser.add_argument("--artifact", help="serve from an artifact (.tar.gz) instead of a file")
    parser.add_argument("--digest", help="expected sha256 of the artifact")
    parser.add_argument("--function", help="function name inside the artifact")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--uds", help="listen on this Unix socket instead of host:port")
    parser.add_argument("--log-level", default=os.environ.get("LEPTON_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)

    from lepton.errors import LeptonError
    from lepton.runtime.server import configure_logging, serve

    if os.environ.get("LEPTON_REPLICA"):  # a replica the platform started as a fresh process: stamp its output
        from lepton.runtime import logstamp

        logstamp.install_from_env(os.environ["LEPTON_REPLICA"])
    configure_logging(args.log_level)
    from lepton.loader import add_platform_packages

    add_platform_packages()
    try:
        if args.artifact:
            from lepton.artifacts import load_artifact_function

            fn = load_artifact_function(args.artifact, args.function, digest=args.digest)
        elif args.target:
            from lepton.loader import load_function

            fn = load_function(args.target)
        else:
            parser.error("give FILE[:NAME] or --artifact")
    except LeptonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return serve(fn, host=args.host, port=args.port, uds=args.uds, log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
