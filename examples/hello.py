"""The smallest Lepton function: `lepton run examples/hello.py`, then
`curl -d '{"name": "Ada"}' localhost:8080`."""

import lepton


@lepton.function(public=True, max_scale=4)
def hello(name: str = "world", excited: bool = False) -> dict:
    """Greet someone."""
    return {"greeting": f"Hello, {name}{'!' if excited else '.'}"}
