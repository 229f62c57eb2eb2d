import os

import lepton


@lepton.function(buckets=["allowed"], public=True)
def touch(bucket: str) -> dict:
    """Write and read back an object in `bucket` with the replica's own scoped token."""
    try:
        lepton.bucket(bucket).put("from-function.txt", f"written by {os.environ['LEPTON_REVISION']}")
        return {"status": 200, "body": lepton.bucket(bucket).get("from-function.txt").decode()}
    except lepton.InvocationError as exc:
        return {"status": exc.status_code, "detail": str(exc.detail)}


@lepton.function(public=True)
def environment() -> dict:
    return dict(os.environ)
