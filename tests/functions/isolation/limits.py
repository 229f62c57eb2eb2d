"""Functions that push at their memory= and gpu= limits."""

import os
import time

import lepton


@lepton.function(memory="128Mi")
def hog(mb: int) -> int:
    blob = b"x" * (mb << 20)  # written, so resident: what the limit is about
    time.sleep(1)  # held while the watchdog samples
    return len(blob)


@lepton.function(gpu=1, max_scale=4, concurrency=1)
def on_gpu(hold: float = 0) -> dict:
    time.sleep(hold)
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES"), "replica": os.environ.get("LEPTON_REPLICA")}


@lepton.function
def on_cpu() -> dict:
    return {"devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


@lepton.function(gpu=3)
def greedy() -> str:
    return "never deployed on a machine with two GPUs"


@lepton.function(memory="1000Ti")
def enormous() -> str:
    return "never deployed"
