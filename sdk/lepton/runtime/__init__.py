"""The function runtime: one ASGI app per function, served by uvicorn in a replica process
(embedded platform) or a container (Knative). `build_app` is the entry point."""

from lepton.runtime.app import build_app

__all__ = ["build_app"]
