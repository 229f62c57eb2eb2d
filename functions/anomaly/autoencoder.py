"""The anomaly detector: an autoencoder over standardised sensor readings. A reading it cannot
reconstruct well (error above the threshold chosen at training) is an anomaly."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights.pt"
CALIBRATION = HERE / "calibration.json"


class AutoEncoder(nn.Module):
    def __init__(self, features: int = 5, hidden: int = 32, code: int = 2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.Tanh(), nn.Linear(hidden, code))
        self.decoder = nn.Sequential(nn.Linear(code, hidden), nn.Tanh(), nn.Linear(hidden, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class Detector:
    def __init__(self) -> None:
        self.model = AutoEncoder()
        self.model.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=True))
        self.model.eval()
        calibration = json.loads(CALIBRATION.read_text())
        self.mean = torch.tensor(calibration["mean"])
        self.std = torch.tensor(calibration["std"])
        self.threshold = calibration["threshold"]

    def scores(self, rows: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error per reading, in standardised units."""
        x = (rows - self.mean) / self.std
        with torch.inference_mode():
            return ((self.model(x) - x) ** 2).mean(dim=1)
