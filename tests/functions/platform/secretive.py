"""Sample user code for tests/embedded/test_secrets.py: `peek` declares a secret and proves
it sees it with a digest (never the value); `nosy` declares none and shows what it can see."""

import hashlib
import os
import time

import lepton

VERSION = 1


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@lepton.function(secrets=["SECRETIVE_TOKEN"], scale_down_after=30)
def peek(wait: float = 0.0) -> dict:
    value = os.environ.get("SECRETIVE_TOKEN")
    time.sleep(wait)
    return {"sha256": digest(value) if value is not None else None, "pid": os.getpid(), "version": VERSION}


@lepton.function(scale_down_after=30)
def nosy() -> dict:
    return {"declared": "SECRETIVE_TOKEN" in os.environ, "digests": sorted(digest(v) for v in os.environ.values())}
