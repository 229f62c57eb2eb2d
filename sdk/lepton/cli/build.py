"""`lepton build`: a container image per function, FROM the runtime image, with the function's
pinned requirements installed and its artifact baked in (see lepton_knative/build.py)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated

import typer


def build(
    target: Annotated[str, typer.Argument(metavar="FILE[:NAME]", help="Python file and optional function name.")],
    tag: Annotated[str, typer.Option("--tag", "-t", help="Image name, e.g. registry.example.com/team/classify:1.0.")],
    base: Annotated[
        str | None,
        typer.Option(
            "--base",
            envvar="LEPTON_BASE_IMAGE",
            show_default=False,
            help="Runtime image to build FROM (default: the release's runtime image).",
        ),
    ] = None,
    dockerfile_only: Annotated[
        bool, typer.Option("--dockerfile-only", help="Write the build context and print its Dockerfile; build nothing.")
    ] = False,
    context: Annotated[
        Path | None,
        typer.Option("--context", file_okay=False, show_default=False, help="Folder for the build context (default: a temporary one)."),
    ] = None,
    build_arg: Annotated[
        list[str] | None,
        typer.Option("--build-arg", show_default=False, help="NAME=VALUE for the build, e.g. PIP_INDEX_URL=... (repeatable)."),
    ] = None,
    volume: Annotated[
        list[str] | None,
        typer.Option("--volume", "-v", show_default=False, help="SRC:DST[:ro] mounted while building (podman, buildah; repeatable)."),
    ] = None,
    builder: Annotated[
        str | None,
        typer.Option(
            "--builder", envvar="LEPTON_BUILDER", show_default=False, help="docker, podman or buildah (default: the first that works here)."
        ),
    ] = None,
) -> None:
    """Build a container image for the functions in FILE (or just NAME): the runtime image,
    their requirements pinned to exact versions, and their artifact baked in. Prints
    `NAME  IMAGE  ARTIFACT-DIGEST` per function."""
    from lepton.artifacts import package
    from lepton.loader import load_functions, split_target
    from lepton_knative.build import find_builder, parse_build_args, write_contexts
    from lepton_knative.manifests import DEFAULT_IMAGE

    args = parse_build_args(build_arg or [])
    functions = load_functions(target)
    artifact = package(split_target(target)[0], functions)
    requirements = {name: list(fn.spec.requirements) for name, fn in functions.items()}
    keep = dockerfile_only or context is not None
    root = context if context is not None else Path(tempfile.mkdtemp(prefix="lepton-build-"))
    try:
        contexts = write_contexts(artifact.data, artifact.digest, requirements, tag=tag, base=base or DEFAULT_IMAGE, root=root)
        if dockerfile_only:
            for ctx in contexts:
                typer.echo(f"# context: {ctx.path}  (image {ctx.tag})")
                typer.echo(ctx.dockerfile.read_text())
            return
        tool = find_builder(builder)
        built = []
        for ctx in contexts:
            typer.echo(f"building {ctx.tag} with {tool.name} for {', '.join(ctx.functions)} ({ctx.digest[:19]}...)", err=True)
            tool.build(ctx, args, volume or [])
            built += [(name, ctx.tag, ctx.digest) for name in ctx.functions]
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
    for name, image, digest in built:
        typer.echo(f"{name}  {image}  {digest}")
