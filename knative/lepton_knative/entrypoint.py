"""What the runtime image runs in a function's pod: find the artifact LEPTON_ARTIFACT_DIGEST
names (baked into the image by `lepton build`, else downloaded from the platform at
LEPTON_URL with the pod's scoped LEPTON_TOKEN), and serve LEPTON_FUNCTION from it on $PORT.
The runtime checks the artifact's sha256 before it imports anything from it.

    LEPTON_FUNCTION=classify LEPTON_ARTIFACT_DIGEST=sha256:3f2a... \\
    LEPTON_URL=http://lepton-platform.lepton.svc.cluster.local:8765 LEPTON_TOKEN=rev.classify-00001.… \\
    PORT=8080 python -m lepton_knative.entrypoint

The pod has no S3 or cluster credentials: its token reaches its own function's artifacts and
buckets through the platform, nothing else.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path

BAKED = "/opt/lepton/artifacts"
FETCH_DEADLINE = 120.0  # the platform may be restarting while a pod starts: keep trying this long


class FetchFailed(Exception):
    """The artifact could not be had; the message says why, in one line."""


def artifact_path(digest: str) -> Path | None:
    """The artifact baked into the image, if it has this one."""
    path = Path(os.environ.get("LEPTON_ARTIFACT_DIR", BAKED)) / f"{digest.removeprefix('sha256:')}.tar.gz"
    return path if path.is_file() else None


def download(platform: str, token: str, digest: str, dest: Path, deadline: float = FETCH_DEADLINE) -> None:
    """GET /v1/artifacts/{digest} into `dest`. Connection errors and 5xx are retried with
    backoff until `deadline` seconds; a 4xx is final (a wrong token stays wrong)."""
    import httpx

    url = f"{platform.rstrip('/')}/v1/artifacts/{digest}"
    give_up = time.monotonic() + deadline
    delay = 0.2
    while True:
        try:
            with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as response:
                if response.is_success:
                    with dest.open("wb") as out:
                        for chunk in response.iter_bytes(1 << 20):
                            out.write(chunk)
                    return
                response.read()
                problem = f"{response.status_code} {response.text.strip()[:300]}"
                if response.status_code < 500:  # a 3xx or 4xx: not something a retry changes
                    raise FetchFailed(f"the platform refused artifact {digest[:19]}...: {problem}")
        except httpx.TransportError as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if time.monotonic() + delay > give_up:
            raise FetchFailed(f"could not fetch artifact {digest[:19]}... from {url} in {deadline:g}s: {problem}")
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def revision_name() -> str:
    """The revision, as a replica on one machine knows it in LEPTON_REVISION: the platform's
    id, which the pod's scoped token (`rev.<id>.<mac>`) carries; else Knative's."""
    token = os.environ.get("LEPTON_TOKEN", "")
    if token.startswith("rev.") and token.count(".") >= 2:
        return token[len("rev.") :].rsplit(".", 1)[0]
    return os.environ.get("K_REVISION", "")


def main() -> int:
    # PID 1 in a container gets no default action for SIGTERM: without a handler a pod being
    # stopped during a long download would wait out its grace period and be killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    missing = [v for v in ("LEPTON_FUNCTION", "LEPTON_ARTIFACT_DIGEST") if not os.environ.get(v)]
    if missing:
        print(f"error: set {', '.join(missing)}", file=sys.stderr)
        return 2
    digest = os.environ["LEPTON_ARTIFACT_DIGEST"]
    path = artifact_path(digest)
    if path is None:
        absent = [v for v in ("LEPTON_URL", "LEPTON_TOKEN") if not os.environ.get(v)]
        if absent:
            print(
                f"error: artifact {digest[:19]}... is not in the image; set {', '.join(absent)} to fetch it from the platform",
                file=sys.stderr,
            )
            return 2
        path = Path(tempfile.mkdtemp(prefix="lepton-artifact-")) / "artifact.tar.gz"
        try:
            download(os.environ["LEPTON_URL"], os.environ["LEPTON_TOKEN"], digest, path)
        except FetchFailed as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    os.environ.setdefault("LEPTON_REVISION", revision_name())
    from lepton.runtime.__main__ import main as serve

    return serve(
        [
            "--artifact",
            str(path),
            "--digest",
            digest,
            "--function",
            os.environ["LEPTON_FUNCTION"],
            "--host",
            os.environ.get("HOST", "0.0.0.0"),
            "--port",
            os.environ.get("PORT", "8080"),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
