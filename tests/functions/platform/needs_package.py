import lepton


@lepton.function(requirements=["definitely-not-installed-pkg>=1"])
def needy() -> int:
    return 1


@lepton.function(requirements=["pydantic<2"])
def old_pydantic() -> int:
    return 1
