"""Requirements the platform's environment lacks, installed per revision (`requirements:
install` in config.yaml; the default, `check`, refuses such a deploy instead).

pip installs the missing packages into a directory of their own, shared by every revision
that asks for the same set, pinned to the versions the platform already has of anything they
depend on. Replicas put that directory at the end of `sys.path`, so the platform's own
packages always win, and forked replicas stay safe: nothing in it is imported in the template
process. A package the platform has at another version is never replaced (the runtime may
depend on it): that deploy fails, naming it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from lepton.errors import LeptonError

DONE = ".installed"


class RequirementError(LeptonError):
    """A requirement cannot be met; the message names it."""


def missing_requirements(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """The requirements the platform's environment does not have; raises on a version mismatch."""
    missing = []
    for line in requirements:
        req = Requirement(line)
        try:
            version = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            raise RequirementError(f"requirement {line!r} does not match installed {req.name} {version}")
    return missing


class Packages:
    def __init__(self, root: Path) -> None:
        self.root = root

    def directory(self, requirements: list[str]) -> Path:
        return self.root / hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]

    def installed(self, requirements: list[str]) -> Path | None:
        folder = self.directory(requirements)
        return folder if (folder / DONE).exists() else None

    async def install(self, requirements: list[str]) -> Path:
        """The directory holding `requirements`, installing them first if no revision has."""
        folder = self.directory(requirements)
        if (folder / DONE).exists():
            return folder
        self.root.mkdir(parents=True, exist_ok=True)
        staging = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        pins = self.root / "platform-constraints.txt"
        pins.write_text("".join(f"{d.metadata['Name']}=={d.version}\n" for d in metadata.distributions() if d.metadata["Name"]))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-input",
            "--disable-pip-version-check",
            "--target",
            str(staging),
            "--constraint",
            str(pins),
            *requirements,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
            reason = next((line for line in reversed(lines) if line.startswith("ERROR")), lines[-1] if lines else "pip failed")
            raise RequirementError(f"could not install {', '.join(requirements)}: {reason.removeprefix('ERROR: ')}")
        (staging / DONE).touch()
        if (folder / DONE).exists():  # another deploy installed the same set meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)
            staging.rename(folder)
        return folder
