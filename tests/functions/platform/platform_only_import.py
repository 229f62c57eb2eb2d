import os

import lepton

if os.environ.get("LEPTON_REVISION"):  # only fails where it is deployed
    import module_missing_on_the_platform  # noqa: F401


@lepton.function(name="greet")
def greet(name: str = "world") -> dict:
    return {"hello": name}
