"""Sensor anomaly detection on device events (see sensors.py, train.py and metrics.json).

- `detect`: every `dev.lepton.sensor.reading` CloudEvent (data: device, rpm, vibration,
  current, temperature, pressure) is scored by the autoencoder; an anomaly is answered with a
  reply event `dev.lepton.sensor.anomaly`, which the broker routes on.
- `alerts`: stores each anomaly as JSON in the `alerts` bucket, `alerts/<device>/<event id>.json`.
"""

from __future__ import annotations

import json

import lepton

READING = "dev.lepton.sensor.reading"
ANOMALY = "dev.lepton.sensor.anomaly"


@lepton.function(
    name="detect",
    max_scale=2,
    concurrency=32,
    requirements=["torch", "numpy"],
    triggers=[lepton.on_event(type=READING, delivery=lepton.Delivery(retry=5, backoff="exponential", delay=0.1))],
)
class Detect:
    def setup(self) -> None:
        from autoencoder import Detector

        self.detector = Detector()

    def __call__(self, event: lepton.CloudEvent) -> lepton.CloudEvent | None:
        import torch
        from sensors import FEATURES

        data = event.get_data()
        if not isinstance(data, dict) or any(not isinstance(data.get(f), (int, float)) for f in FEATURES):
            raise ValueError(f"a reading needs numbers for {', '.join(FEATURES)}; got {data!r}")
        score = float(self.detector.scores(torch.tensor([[float(data[f]) for f in FEATURES]]))[0])
        if score <= self.detector.threshold:
            return None
        return lepton.CloudEvent(
            {
                "type": ANOMALY,
                "source": "/functions/detect",
                "id": f"anomaly-{event.get_id()}",
                "subject": str(data.get("device", "")),
                "datacontenttype": "application/json",
            },
            {
                "device": data.get("device"),
                "score": round(score, 4),
                "threshold": round(self.detector.threshold, 4),
                "reading": data,
                "reading_id": event.get_id(),
            },
        )


@lepton.function(name="alerts", buckets=["alerts"], triggers=[lepton.on_event(type=ANOMALY)])
def alerts(event: lepton.CloudEvent) -> None:
    anomaly = event.get_data()
    key = f"alerts/{anomaly['device']}/{event.get_id()}.json"
    lepton.bucket("alerts").put(key, json.dumps({**anomaly, "time": str(event.get_time())}), content_type="application/json")
