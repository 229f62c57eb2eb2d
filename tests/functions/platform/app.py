"""Sample user code for platform tests. VERSION is rewritten by tests to make a new revision."""

import os
import time

import lepton

VERSION = 1


@lepton.function(scale_down_after=1)
def greet(name: str = "world") -> dict:
    return {"hello": name, "version": VERSION, "pid": os.getpid()}


@lepton.function(public=True, target=1, max_scale=4, scale_down_after=1.5)
def work(seconds: float = 0.3, crash: bool = False) -> dict:
    if crash:
        os._exit(17)
    time.sleep(seconds)
    return {"pid": os.getpid(), "version": VERSION}
