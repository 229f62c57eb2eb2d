"""A function that imports torch and builds a small model in setup(): the cold-start case."""

import torch

import lepton


@lepton.function(name="tiny-model", scale_down_after=0.3)
class TinyModel:
    def setup(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).eval()

    def __call__(self, x: list[float]) -> int:
        with torch.no_grad():
            return int(self.model(torch.tensor([x])).argmax())
