"""What the runtime image runs: fetch the artifact named by LEPTON_ARTIFACT_URL (s3:// or an
https signed URL), check it against LEPTON_ARTIFACT_DIGEST, and serve LEPTON_FUNCTION on $PORT.

    LEPTON_ARTIFACT_URL=s3://lepton-artifacts/artifacts/3f2a....tar.gz \\
    LEPTON_ARTIFACT_DIGEST=sha256:3f2a... LEPTON_FUNCTION=classify PORT=8080 \\
    python -m lepton_knative.entrypoint
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit


def fetch(url: str, dest: Path) -> None:
    parts = urlsplit(url)
    if parts.scheme == "s3":
        import boto3

        s3 = boto3.client("s3", endpoint_url=os.environ.get("LEPTON_S3_ENDPOINT_URL") or None,
                          region_name=os.environ.get("AWS_REGION", "us-east-1"))
        s3.download_file(parts.netloc, parts.path.lstrip("/"), str(dest))
    elif parts.scheme in ("http", "https"):
        import httpx

        with httpx.stream("GET", url, timeout=60, follow_redirects=True) as response, dest.open("wb") as out:
            response.raise_for_status()
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
    else:
        raise SystemExit(f"error: LEPTON_ARTIFACT_URL {url!r} is not s3:// or http(s)://")


def main() -> int:
    missing = [v for v in ("LEPTON_ARTIFACT_URL", "LEPTON_ARTIFACT_DIGEST", "LEPTON_FUNCTION") if not os.environ.get(v)]
    if missing:
        print(f"error: set {', '.join(missing)}", file=sys.stderr)
        return 2
    from lepton.runtime.__main__ import main as serve

    path = Path(tempfile.mkdtemp(prefix="lepton-artifact-")) / "artifact.tar.gz"
    fetch(os.environ["LEPTON_ARTIFACT_URL"], path)
    return serve(["--artifact", str(path), "--digest", os.environ["LEPTON_ARTIFACT_DIGEST"], "--function", os.environ["LEPTON_FUNCTION"],
                  "--host", os.environ.get("HOST", "0.0.0.0"), "--port", os.environ.get("PORT", "8080")])


if __name__ == "__main__":
    sys.exit(main())
