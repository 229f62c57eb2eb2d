"""requirements.lock (the exact versions CI and the images run) against pyproject.toml's
compatible ranges: a lock that drifts outside a range, or misses a dependency, fails here."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.helpers import ROOT


def locked() -> dict[str, Version]:
    out = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not name==version"
            out[canonicalize_name(name)] = Version(version)
    return out


def declared() -> list[tuple[str, Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"], **project["optional-dependencies"]}
    return [(group, Requirement(line)) for group, lines in groups.items() for line in lines]


def test_every_dependency_is_locked_within_its_range():
    lock = locked()
    problems = []
    for group, req in declared():
        name = canonicalize_name(req.name)
        if name == "lepton":
            continue  # the project's own extras
        if name not in lock:
            problems.append(f"{req.name} ({group}) is not in requirements.lock")
        elif not req.specifier.contains(lock[name], prereleases=True):
            problems.append(f"{req.name}=={lock[name]} in requirements.lock is outside {req} ({group})")
    assert not problems, "; ".join(problems) + " (run `make lock`, or widen the range)"


def test_ranges_are_ranges_not_pins():
    """Users install lepton into their own environments: an exact pin there would fight theirs."""
    pinned = [str(req) for _, req in declared() if any(spec.operator in ("==", "===") for spec in req.specifier)]
    assert not pinned, f"exact pins in pyproject.toml belong in requirements.lock: {pinned}"
