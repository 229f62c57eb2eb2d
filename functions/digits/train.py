"""Trains the digits classifier on scikit-learn's bundled digits dataset (1,797 8x8 images, no
download) and writes weights.pt and metrics.json beside this file.

    python functions/digits/train.py        # about a minute on two CPU cores

Deterministic: fixed seeds, a fixed 80/20 stratified split, one thread.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from digitnet import WEIGHTS, DigitNet

SEED = 7
EPOCHS = 40


def split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed train/test split every script uses (tests and benchmarks too)."""
    digits = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        digits.images, digits.target, test_size=0.2, random_state=SEED, stratify=digits.target
    )
    as_x = lambda a: torch.tensor(a, dtype=torch.float32).unsqueeze(1) / 16.0  # noqa: E731
    return as_x(x_train), torch.tensor(y_train), as_x(x_test), torch.tensor(y_test)


def shift(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augment: move each image by up to one pixel in each direction."""
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    dx, dy = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + 8, dx : dx + 8]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.inference_mode():
        return (model(x).argmax(1) == y).float().mean().item()


def main() -> None:
    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    generator = torch.Generator().manual_seed(SEED)
    x_train, y_train, x_test, y_test = split()
    model = DigitNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=EPOCHS * ((len(x_train) + 63) // 64))
    started = time.perf_counter()
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x_train), generator=generator)
        for start in range(0, len(order), 64):
            idx = order[start : start + 64]
            loss = nn.functional.cross_entropy(model(shift(x_train[idx], generator)), y_train[idx], label_smoothing=0.05)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: test accuracy {accuracy(model.eval(), x_test, y_test):.4f}")
    model.eval()
    test_accuracy = accuracy(model, x_test, y_test)
    torch.save(model.state_dict(), WEIGHTS)
    metrics = {
        "test_accuracy": round(test_accuracy, 4),
        "train_images": len(x_train),
        "test_images": len(x_test),
        "epochs": EPOCHS,
        "seed": SEED,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(time.perf_counter() - started, 1),
        "torch": torch.__version__,
    }
    (WEIGHTS.parent / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics))


if __name__ == "__main__":
    main()
