"""Another function, with its own artifact, logs and replica for `hostile` to go after."""

import lepton


@lepton.function(min_scale=1)
def neighbour() -> str:
    print("neighbour was called", flush=True)
    return "still here"
