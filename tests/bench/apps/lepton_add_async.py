"""The router benchmark's replica at its fastest: the same trivial handler as lepton_add.py,
but async, so the replica answers on its event loop with no thread hop."""

import lepton


@lepton.function(target=100, max_scale=1)
async def add_async(a: int, b: int = 0) -> int:
    return a + b
