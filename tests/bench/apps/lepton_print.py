"""The log benchmark's handlers: the runtime benchmark's `add`, quiet or printing a line per call."""

import lepton


@lepton.function(target=100, max_scale=1)
def quiet(a: int, b: int = 0) -> int:
    return a + b


@lepton.function(target=100, max_scale=1)
def chatty(a: int, b: int = 0) -> int:
    print(f"adding {a} and {b}")
    return a + b
