"""Needs a package the platform lacks; `requirements: install` gets it per revision."""

import lepton


@lepton.function(requirements=["lepton-sample-extra==0.1.0"])
def extra() -> str:
    import lepton_sample_extra  # not on the machine that deploys, either

    return lepton_sample_extra.GREETING


@lepton.function(requirements=["definitely-not-installed-pkg>=1"])
def unobtainable() -> int:
    return 1
