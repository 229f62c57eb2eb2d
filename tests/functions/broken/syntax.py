import lepton


@lepton.function
def oops(a: int) -> int
    return a
