"""Records how long each event took from the sender (its `sentat` extension) to arrival."""

import os
import time

import lepton

_log = None


@lepton.function(name="sink", min_scale=1, max_scale=1, concurrency=64, triggers=[lepton.on_event(type="bench.event")])
def sink(event: lepton.CloudEvent) -> None:
    global _log
    if _log is None:
        _log = open(os.path.join(os.environ["LEPTON_HOME"], "latency.txt"), "a", buffering=1)
    sent = event.get_extension("sentat")
    _log.write(f"{time.time() - float(sent):.6f}\n")
