import lepton


@lepton.function(name="greet")
class Greeter:
    def setup(self) -> None:
        raise RuntimeError("model weights missing")

    def __call__(self, name: str = "world") -> dict:
        return {"hello": name}
