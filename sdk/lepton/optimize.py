"""Model optimisation for CPU serving.

    model = lepton.optimize(model, "int8")

"int8" is torch's dynamic quantization of the Linear layers: weights are stored as int8 and
activations are quantized on the fly, which speeds up transformer and MLP inference on CPU
at a small cost in accuracy (tests/bench/quantization.py measures both). torch is imported
here, on first use, never on the platform's import path.
"""

from __future__ import annotations

import warnings
from typing import Any

from lepton.errors import SpecError

MODES = ("int8",)


def optimize(model: Any, mode: str = "int8") -> Any:
    """A copy of `model` optimised for inference; the original is left as it was."""
    if mode not in MODES:
        raise SpecError(f"lepton.optimize: unknown mode {mode!r}; use one of {', '.join(MODES)}")
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise SpecError(f"lepton.optimize: expected a torch.nn.Module, got {type(model).__name__}")
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        raise SpecError(f"lepton.optimize: {type(model).__name__} has no Linear layers to quantize")
    with warnings.catch_warnings():
        # torch marks eager-mode quantization deprecated in favour of torchao, whose int8 path
        # targets GPUs; this one is still the fast CPU path in torch 2.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
        return torch.ao.quantization.quantize_dynamic(model.eval(), {nn.Linear}, dtype=torch.qint8, inplace=False)
