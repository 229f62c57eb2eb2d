"""Where functions run: the embedded backend (worker processes on this machine) or the
Knative backend (Services on a cluster). The platform service talks to either through the
same operations (`base.Backend`) and never asks which one it has."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lepton_platform.backends.base import Backend

if TYPE_CHECKING:
    from lepton_platform.service import Platform


def open_backend(platform: Platform, *, fork: bool) -> Backend:
    if platform.config.backend == "knative":
        from lepton_platform.backends.knative import KnativeBackend

        return KnativeBackend(platform)
    from lepton_platform.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(platform, fork=fork)


__all__ = ["Backend", "open_backend"]
