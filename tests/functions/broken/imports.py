import lepton
import package_that_does_not_exist  # noqa: F401


@lepton.function
def oops(a: int) -> int:
    return a
