"""The Lepton side of the runtime benchmark: the same trivial typed JSON handler."""

import lepton


@lepton.function(target=100, max_scale=1)
def add(a: int, b: int = 0) -> int:
    return a + b
