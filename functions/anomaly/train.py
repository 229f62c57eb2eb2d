"""Trains the anomaly detector on simulated healthy readings (sensors.py) and picks the
threshold that flags 0.5% of healthy validation readings. Writes weights.pt, calibration.json
and metrics.json (precision and recall on held-out healthy and faulty readings).

    python functions/anomaly/train.py       # a few seconds
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from autoencoder import CALIBRATION, WEIGHTS, AutoEncoder, Detector
from sensors import FAULTS, faulty, healthy

SEED = 11


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    train, validation = healthy(20_000, rng), healthy(4_000, rng)
    mean, std = train.mean(axis=0), train.std(axis=0)
    x = torch.tensor((train - mean) / std)
    model = AutoEncoder()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        for idx in torch.randperm(len(x)).split(256):
            loss = ((model(x[idx]) - x[idx]) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.save(model.state_dict(), WEIGHTS)
    CALIBRATION.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist(), "threshold": 0.0}))
    detector = Detector()
    threshold = float(np.quantile(detector.scores(torch.tensor(validation)).numpy(), 0.995))
    CALIBRATION.write_text(json.dumps({"mean": mean.tolist(), "std": std.tolist(), "threshold": threshold}, indent=2) + "\n")

    detector = Detector()
    test_rng = np.random.default_rng(SEED + 1)
    normal = detector.scores(torch.tensor(healthy(5_000, test_rng))).numpy() > threshold
    recall = {f: float((detector.scores(torch.tensor(faulty(1_000, test_rng, f))).numpy() > threshold).mean()) for f in FAULTS}
    flagged_faults = sum(recall.values()) * 1_000
    metrics = {
        "threshold": round(threshold, 5),
        "false_positive_rate": round(float(normal.mean()), 4),
        "recall": {f: round(r, 4) for f, r in recall.items()},
        "precision": round(flagged_faults / (flagged_faults + normal.sum()), 4),
        "train_readings": len(train),
        "seed": SEED,
        "torch": torch.__version__,
    }
    (WEIGHTS.parent / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
