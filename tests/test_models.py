"""The committed models do what their metrics.json says, and lepton.optimize is safe to use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lepton
from tests.embedded.test_ai_functions import FUNCTIONS, load


def test_committed_digits_weights_reach_their_recorded_accuracy():
    train = load(FUNCTIONS / "digits" / "train.py")
    digitnet = load(FUNCTIONS / "digits" / "digitnet.py")
    _, _, x_test, y_test = train.split()
    accuracy = train.accuracy(digitnet.load(), x_test, y_test)
    recorded = json.loads((FUNCTIONS / "digits" / "metrics.json").read_text())["test_accuracy"]
    assert accuracy >= 0.97 and accuracy == pytest.approx(recorded, abs=1e-3)


def test_anomaly_threshold_separates_healthy_from_faulty():
    sensors = load(FUNCTIONS / "anomaly" / "sensors.py")
    autoencoder = load(FUNCTIONS / "anomaly" / "autoencoder.py")
    detector = autoencoder.Detector()
    rng = np.random.default_rng(99)
    healthy = detector.scores(torch.tensor(sensors.healthy(2000, rng))) > detector.threshold
    assert healthy.float().mean() < 0.02
    for fault in sensors.FAULTS:
        assert (detector.scores(torch.tensor(sensors.faulty(300, rng, fault))) > detector.threshold).float().mean() > 0.85, fault


def test_optimize_quantizes_linear_layers_and_refuses_what_it_cannot():
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    quantized = lepton.optimize(model, "int8")
    x = torch.randn(8, 16)
    assert torch.allclose(quantized(x), model(x), atol=0.05)
    assert isinstance(model[0], torch.nn.Linear) and not isinstance(quantized[0], torch.nn.Linear)
    with pytest.raises(lepton.SpecError, match="unknown mode 'fp4'"):
        lepton.optimize(model, "fp4")
    with pytest.raises(lepton.SpecError, match="no Linear layers"):
        lepton.optimize(torch.nn.Conv2d(1, 1, 3))
    with pytest.raises(lepton.SpecError, match="expected a torch.nn.Module"):
        lepton.optimize("model")
