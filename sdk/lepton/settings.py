"""Where settings come from, stated once: decorator > CLI flag > environment > default.

Every CLI flag has an environment twin: --platform/LEPTON_URL, --token/LEPTON_TOKEN,
LEPTON_HOME for state (default ~/.lepton).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8765"


def lepton_home() -> Path:
    return Path(os.environ.get("LEPTON_HOME") or Path.home() / ".lepton")


def platform_url(flag: str | None = None) -> str:
    return (flag or os.environ.get("LEPTON_URL") or DEFAULT_URL).rstrip("/")


def token(flag: str | None = None) -> str | None:
    """The flag, else LEPTON_TOKEN, else the admin token file `lepton up` wrote."""
    if flag:
        return flag
    if os.environ.get("LEPTON_TOKEN"):
        return os.environ["LEPTON_TOKEN"]
    path = lepton_home() / "token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None
