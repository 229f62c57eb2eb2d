"""Which GPUs each replica may use.

The machine's GPUs come from `gpus:` in config.yaml (LEPTON_GPUS=0,1; "none" for none), else
from NVML (nvidia-ml-py) when the driver is there. A replica of a function with `gpu=N` gets N
whole GPUs of its own through CUDA_VISIBLE_DEVICES, and a replica of a function without
`gpu=` gets none, so it cannot take memory on a GPU another replica owns. While no GPU is
free, the fleet starts no replica and requests wait in the activator.

CUDA reads CUDA_VISIBLE_DEVICES when it initialises, which is why the template process must
never initialise it (template.py checks): a forked replica initialises CUDA itself, on its own GPUs.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("lepton.platform")


def discover(configured: str | None) -> list[int]:
    """The GPU indexes replicas may use."""
    if configured is not None:
        return [] if configured == "none" else sorted({int(i) for i in configured.split(",")})
    try:
        import pynvml  # nvidia-ml-py; the platform never imports torch or initialises CUDA
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
        try:
            return list(range(pynvml.nvmlDeviceGetCount()))
        finally:
            pynvml.nvmlShutdown()
    except pynvml.NVMLError as exc:  # no driver, or no device
        logger.debug("NVML found no GPUs: %s", exc)
        return []


class GpuPlacement:
    def __init__(self, gpus: list[int]) -> None:
        self.gpus = gpus
        self.free = list(gpus)

    def fits(self, wanted: int) -> bool:
        return wanted <= len(self.free)

    def take(self, wanted: int) -> list[int] | None:
        """`wanted` whole GPUs, or None while they are not free; give them back when done."""
        if wanted > len(self.free):
            return None
        taken, self.free = self.free[:wanted], self.free[wanted:]
        return taken

    def give_back(self, gpus: list[int]) -> None:
        self.free = sorted({*self.free, *gpus})

    def visible_devices(self, gpus: list[int]) -> dict[str, str]:
        """The environment that shows a replica its GPUs (none at all, on a machine with GPUs,
        for a function that asked for none)."""
        return {"CUDA_VISIBLE_DEVICES": ",".join(map(str, gpus))} if self.gpus else {}
