"""Calls between functions: `caller` may invoke the private `callee` (calls=[...]) with its
replica's scoped token; `stranger`, which declares no calls=, may not."""

import lepton


@lepton.function(scale_down_after=30)
def callee(x: int = 1) -> dict:
    return {"callee": x}


@lepton.function(scale_down_after=30)
def third() -> dict:
    return {"third": True}


def attempt(call) -> dict:
    try:
        return {"status": 200, "body": call()}
    except lepton.InvocationError as exc:
        return {"status": exc.status_code, "detail": str(exc.detail)}


@lepton.function(calls=["callee"], scale_down_after=30)
def caller(target: str = "callee") -> dict:
    """`callee` through its function object (`.remote()`), anything else by name."""
    if target == "callee":
        return attempt(lambda: callee.remote(x=7))
    with lepton.Client() as client:
        return attempt(lambda: client.invoke(target, {}))


@lepton.function(scale_down_after=30)
def stranger() -> dict:
    return attempt(lambda: callee.remote(x=7))
