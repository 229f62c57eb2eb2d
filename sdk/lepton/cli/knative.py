"""`lepton render`: the Knative YAML for the functions in a file, checked against Knative's
CRD schemas and webhook rules, without a cluster. (`lepton deploy --target knative` goes
through the platform installed on the cluster, which owns the tokens and the Secrets.)"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from lepton.cli.options import ImageOpt


def render(
    target: Annotated[str, typer.Argument(metavar="FILE[:NAME]")],
    namespace: Annotated[str, typer.Option("--namespace", envvar="LEPTON_NAMESPACE", help="Kubernetes namespace.")] = "lepton",
    broker: Annotated[str, typer.Option("--broker", envvar="LEPTON_BROKER", help="Knative Broker for triggers.")] = "default",
    image: ImageOpt = None,
    platform_url: Annotated[
        str | None,
        typer.Option("--platform-url", show_default=False, help="How pods reach the platform [default: the in-cluster Service]."),
    ] = None,
) -> None:
    """Print the Knative YAML (Service, Triggers, PingSources) for the functions in FILE.
    The platform also writes each function's Secret `lepton-fn-NAME` (its URL and tokens)."""
    import yaml

    from lepton.artifacts import package
    from lepton.loader import load_functions, split_target
    from lepton_knative.deploy import plan
    from lepton_knative.manifests import DEFAULT_IMAGE, DEFAULT_PLATFORM_URL, Target

    functions = load_functions(target)
    artifact = package(split_target(target)[0], functions)
    where = Target(
        namespace=namespace,
        broker=broker,
        image=image or DEFAULT_IMAGE,
        digest=artifact.digest,
        platform_url=platform_url or DEFAULT_PLATFORM_URL,
    )
    objects: list[dict[str, Any]] = []
    for name in sorted(functions):
        planned = plan(functions[name].spec, where)
        objects += [planned.service, *planned.others]
    typer.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
