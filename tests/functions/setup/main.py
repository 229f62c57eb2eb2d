"""A class-based function whose setup() is slow (or fails when asked to)."""

import os
import time

import lepton


@lepton.function(name="model")
class Model:
    def setup(self) -> None:
        time.sleep(float(os.environ.get("SETUP_SECONDS", "0")))
        if os.environ.get("SETUP_FAIL"):
            raise RuntimeError("weights file is corrupt")
        self.weights = 3

    def __call__(self, x: int) -> int:
        return self.weights * x
