"""Records how long each event took from the sender (its `sentat` extension) to arrival."""

import os
import time

import lepton


@lepton.function(name="sink", min_scale=1, max_scale=1, concurrency=64, triggers=[lepton.on_event(type="bench.event")])
def sink(event: lepton.CloudEvent) -> None:
    sent = event.get_extension("sentat")
    os.write(1, f"LATENCY {event.get_id()} {time.time() - float(sent):.6f}\n".encode())  # to its log, in one write
