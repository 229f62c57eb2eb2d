"""Sample user code for the client side of async jobs and fan-out (fn.spawn, fn.map)."""

import lepton


@lepton.function(concurrency=16, max_scale=1, scale_down_after=60)
def square(x: int) -> int:
    if x < 0:
        raise ValueError(f"negative input {x}")
    return x * x


@lepton.function(scale_down_after=60)
def add(a: int, b: int = 0) -> int:
    return a + b


@lepton.function(retries=lepton.Retries(max_retries=1, delay=600, max_delay=600), scale_down_after=60)
def unlucky() -> None:
    """Its first attempt fails at once; the job then waits ten minutes, queued, for the retry:
    a job to cancel that keeps no replica busy."""
    raise RuntimeError("not this time")


@lepton.function(scale_down_after=60)
def shout(text: str):
    """Streams text: its body is not JSON, so a job's result comes back as bytes."""
    yield text.upper()
