"""Function images: a Docker build context per set of functions that share requirements, and
the container builder that builds it (`lepton build`).

A context holds everything its image needs, so any builder can build it with no other files:

    Dockerfile                FROM the runtime image; pip-installs requirements.txt, records the
                              image's packages in /opt/lepton/packages.txt, bakes the artifact
    requirements.txt          the functions' requirements, each pinned to one exact version
    artifacts/<hex>.tar.gz    the content-addressed artifact, copied to $LEPTON_ARTIFACT_DIR

The runtime's entrypoint serves a baked artifact (`$LEPTON_ARTIFACT_DIR/<hex>.tar.gz`) instead of
fetching it, so a pod of such an image needs only LEPTON_FUNCTION and LEPTON_ARTIFACT_DIGEST.

Functions of one file share one artifact. They share one image too when their requirements are
the same (the usual case: the digits file's three functions all need torch and pillow); when
they differ, each set gets its own image, so no function carries packages it did not ask for.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lepton.errors import LeptonError

ARTIFACT_DIR = "/opt/lepton/artifacts"
ARTIFACT_LABEL = "dev.lepton.artifact"
FUNCTIONS_LABEL = "dev.lepton.functions"
# Build args every generated Dockerfile declares (empty: pip's defaults, i.e. PyPI).
PIP_ARGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONSTRAINT", "PIP_CERT")
BUILDERS = ("docker", "podman", "buildah")


class BuildError(LeptonError):
    """A function's image cannot be described or built; the message says why and what to do."""


class RequirementError(BuildError):
    """A requirement cannot be pinned to one version."""

    exit_code = 2


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def pin(requirement: str, installed: Callable[[str], str | None] = installed_version) -> str:
    """`requirement` with one exact version: as written when it already says `==X` (or is a
    direct URL), else the version installed here, which must satisfy what it does say.

    'torch' becomes 'torch==2.13.0+cpu' where torch 2.13.0+cpu is installed. The installed version is kept whole, local label included: an image should get the build
    that was tested here (`+cpu`), and a missing one fails the build rather than pulling another.
    """
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet

    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        raise RequirementError(f"{requirement!r} is not a pip requirement: {str(exc).splitlines()[0]}") from None
    if req.url or any(s.operator in ("==", "===") and not s.version.endswith("*") for s in req.specifier):
        return str(req)
    version = installed(req.name)
    if version is None:
        raise RequirementError(
            f"requirement {requirement!r} is not pinned and {req.name} is not installed here to take "
            f"its version from; pin it (e.g. '{req.name}==1.2.3') or install it"
        )
    if req.specifier and not req.specifier.contains(version, prereleases=True):
        raise RequirementError(
            f"requirement {requirement!r}: the installed {req.name} {version} does not satisfy it; "
            f"pin a version that does (e.g. '{req.name}==X.Y.Z')"
        )
    req.specifier = SpecifierSet(f"=={version}")
    return str(req)


def pin_all(requirements: Iterable[str], installed: Callable[[str], str | None] = installed_version) -> list[str]:
    return sorted({pin(r, installed) for r in requirements}, key=str.lower)


@dataclass(frozen=True)
class Context:
    """One image to build: its folder, tag, functions and artifact digest."""

    path: Path
    tag: str
    functions: tuple[str, ...]
    digest: str
    requirements: tuple[str, ...]

    @property
    def dockerfile(self) -> Path:
        return self.path / "Dockerfile"


def dockerfile(base: str, requirements: Sequence[str], digest: str, functions: Sequence[str]) -> str:
    """The Dockerfile of one function image (see the module docstring)."""
    hex_ = digest.removeprefix("sha256:")
    lines = [f"# Made by `lepton build` for {', '.join(functions)}: runtime image + requirements + artifact.", f"FROM {base}"]
    lines += [f"ARG {name}=" for name in PIP_ARGS]
    lines += ["USER root"]
    if requirements:
        lines += [
            "COPY requirements.txt /opt/lepton/requirements.txt",
            "RUN pip install --no-cache-dir --disable-pip-version-check -r /opt/lepton/requirements.txt \\",
            " && pip list --format=freeze --disable-pip-version-check > /opt/lepton/packages.txt",
        ]
    lines += [
        f"COPY artifacts/{hex_}.tar.gz {ARTIFACT_DIR}/{hex_}.tar.gz",
        "USER 10001",
        f'LABEL {ARTIFACT_LABEL}="{digest}" {FUNCTIONS_LABEL}="{",".join(functions)}"',
    ]
    return "\n".join(lines) + "\n"


def image_tag(tag: str, suffix: str | None) -> str:
    """TAG, or with several images for one file, TAG's repository + '-SUFFIX' (same tag)."""
    if "@" in tag or not tag:
        raise BuildError(f"--tag {tag!r}: give a name like 'registry.example.com/team/app:1.0' (no @digest)")
    if suffix is None:
        return tag
    repo, sep, version = tag.rpartition(":")
    if not sep or "/" in version:
        repo, version = tag, ""
    return f"{repo}-{suffix}" + (f":{version}" if version else "")


def write_contexts(
    artifact_data: bytes,
    digest: str,
    requirements: Mapping[str, Sequence[str]],
    *,
    tag: str,
    base: str,
    root: Path,
    installed: Callable[[str], str | None] = installed_version,
) -> list[Context]:
    """Write one build context per set of functions with the same pinned requirements.

    `requirements` maps each function name to its requirements. One set: the context is `root`
    and the image is `tag`. Several: `root/<first function>/` and `tag` with `-<first function>`.
    """
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in sorted(requirements):
        groups.setdefault(tuple(pin_all(requirements[name], installed)), []).append(name)
    hex_ = digest.removeprefix("sha256:")
    contexts = []
    for pinned, names in sorted(groups.items(), key=lambda item: item[1][0]):
        several = len(groups) > 1
        path = root / names[0] if several else root
        (path / "artifacts").mkdir(parents=True, exist_ok=True)
        (path / "artifacts" / f"{hex_}.tar.gz").write_bytes(artifact_data)
        (path / "requirements.txt").write_text("".join(f"{r}\n" for r in pinned))
        (path / "Dockerfile").write_text(dockerfile(base, pinned, digest, names))
        contexts.append(Context(path, image_tag(tag, names[0] if several else None), tuple(names), digest, pinned))
    return contexts


# --- builders -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Builder:
    """A container build tool: docker, podman or buildah (each reads its own settings; buildah,
    for example, STORAGE_DRIVER and BUILDAH_ISOLATION)."""

    name: str

    def command(self, context: Context, build_args: Mapping[str, str], volumes: Sequence[str], iidfile: Path) -> list[str]:
        if volumes and self.name == "docker":
            raise BuildError(
                "docker build cannot mount host folders (--volume); use podman or buildah (--builder), "
                "or point pip at an index with --build-arg"
            )
        args = [
            self.name,
            "bud" if self.name == "buildah" else "build",
            "-f",
            str(context.dockerfile),
            "-t",
            context.tag,
            "--iidfile",
            str(iidfile),
        ]
        for key, value in build_args.items():
            args += ["--build-arg", f"{key}={value}"]
        for volume in volumes:
            args += ["-v", volume]
        return [*args, str(context.path)]

    def build(self, context: Context, build_args: Mapping[str, str] = {}, volumes: Sequence[str] = ()) -> str:
        """Build the context; the builder's output goes to stderr. Returns the image ID."""
        with tempfile.TemporaryDirectory(prefix="lepton-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            args = self.command(context, build_args, volumes, iidfile)
            sys.stderr.flush()
            result = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=sys.stderr, stderr=sys.stderr)
            if result.returncode != 0:
                raise BuildError(
                    f"{self.name} could not build {context.tag} for {', '.join(context.functions)} "
                    f"(exit {result.returncode}; its output is above)"
                )
            return iidfile.read_text().strip() if iidfile.exists() else ""


def works(name: str, timeout: float = 20) -> bool:
    """Whether NAME can build here: installed, and its `info` succeeds (a docker client with no
    engine to talk to fails it)."""
    if shutil.which(name) is None:
        return False
    try:
        return (
            subprocess.run(
                [name, "info"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_builder(preferred: str | None = None, probe: Callable[[str], bool] = works) -> Builder:
    """The builder to use: PREFERRED (which must work), else the first of docker, podman and
    buildah that works."""
    if preferred:
        if preferred not in BUILDERS:
            raise BuildError(f"--builder {preferred!r}: use one of {', '.join(BUILDERS)}")
        if not probe(preferred):
            raise BuildError(f"{preferred} cannot build here (not installed, or `{preferred} info` fails)")
        return Builder(preferred)
    for name in BUILDERS:
        if probe(name):
            return Builder(name)
    raise BuildError(
        "no container builder works here: install docker (with a running engine), podman or buildah, "
        "or write the build context with --dockerfile-only and build it elsewhere"
    )


def parse_build_args(values: Iterable[str]) -> dict[str, str]:
    """['K=V', ...] -> {'K': 'V'}; a bare 'K' takes $K, as docker's --build-arg does."""
    args = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BuildError(f"--build-arg {value!r}: expected NAME=VALUE")
        if not sep:
            if key not in os.environ:
                continue
            val = os.environ[key]
        args[key] = val
    return args
