"""The digits classifier: a small residual CNN for scikit-learn's 8x8 digit images.

Inputs are 8x8 grids of intensities 0..16 (the dataset's scale); `to_tensor` also accepts
PNG bytes of any size, which it converts to the same 8x8 scale.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "weights.pt"


class Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x + self.body(x))


class DigitNet(nn.Module):
    def __init__(self, width: int = 32, blocks: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.stage1 = nn.Sequential(*[Block(width) for _ in range(blocks)])
        self.down = nn.Sequential(
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True)
        )
        self.stage2 = nn.Sequential(*[Block(2 * width) for _ in range(blocks)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stage2(self.down(self.stage1(self.stem(x)))))


def load(path: Path = WEIGHTS) -> DigitNet:
    model = DigitNet()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def png_to_grid(data: bytes) -> list[list[float]]:
    """A PNG (any size, any mode) as an 8x8 grid on the dataset's 0..16 scale, ink bright."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("L").resize((8, 8), Image.Resampling.BOX)
    pixels = list(image.getdata())
    return [[pixels[r * 8 + c] / 255 * 16 for c in range(8)] for r in range(8)]


def grid_to_png(grid: Any, scale: int = 4) -> bytes:
    """An 8x8 grid (0..16) as a PNG, `scale` pixels per cell: what the demo uploads."""
    from PIL import Image

    image = Image.new("L", (8, 8))
    image.putdata([int(round(float(v) / 16 * 255)) for row in grid for v in row])
    out = io.BytesIO()
    image.resize((8 * scale, 8 * scale), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def to_tensor(grids: list[Any]) -> torch.Tensor:
    """A batch of 8x8 grids (0..16) as the network's input: N x 1 x 8 x 8, scaled to 0..1."""
    x = torch.tensor(grids, dtype=torch.float32)
    if x.dim() != 3 or x.shape[1:] != (8, 8):
        raise ValueError(f"expected 8x8 images, got shape {tuple(x.shape[1:])}")
    return (x / 16.0).unsqueeze(1)
