"""Machine sensors, simulated: what a healthy motor reports, and the faults the detector must
catch. Shared by train.py, the tests and the demo, so they all see the same physics.

Healthy: rpm sets vibration and current, current heats the motor, pressure follows rpm.
Faults: a failing bearing (vibration far above what the rpm explains), overheating (hot for
its current), and a stalled pump (current high, pressure low).
"""

from __future__ import annotations

import numpy as np

FEATURES = ("rpm", "vibration", "current", "temperature", "pressure")
FAULTS = ("bearing", "overheat", "stall")


def healthy(n: int, rng: np.random.Generator) -> np.ndarray:
    rpm = rng.uniform(900, 3000, n)
    load = rng.uniform(0.3, 1.0, n)
    vibration = 0.4 + 0.0009 * rpm + rng.normal(0, 0.12, n)
    current = 2.0 + 0.004 * rpm * load + rng.normal(0, 0.25, n)
    temperature = 35 + 3.2 * current + rng.normal(0, 1.5, n)
    pressure = 1.0 + 0.0011 * rpm * load + rng.normal(0, 0.08, n)
    return np.stack([rpm, vibration, current, temperature, pressure], axis=1).astype(np.float32)


def faulty(n: int, rng: np.random.Generator, fault: str) -> np.ndarray:
    x = healthy(n, rng)
    if fault == "bearing":
        x[:, 1] += rng.uniform(0.4, 2.0, n)
    elif fault == "overheat":
        x[:, 3] += rng.uniform(5, 20, n)
    elif fault == "stall":
        x[:, 2] += rng.uniform(1.5, 6, n)
        x[:, 4] *= rng.uniform(0.4, 0.8, n)
    else:
        raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
    return x


def reading(row: np.ndarray, device: str) -> dict:
    return {"device": device, **{name: round(float(v), 3) for name, v in zip(FEATURES, row)}}
