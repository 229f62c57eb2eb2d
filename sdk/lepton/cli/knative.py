"""`lepton render` and `lepton deploy --target knative`: the same functions on a cluster."""

from __future__ import annotations

import os
from typing import Annotated, Any, Optional

import typer

NamespaceOpt = Annotated[str, typer.Option("--namespace", envvar="LEPTON_NAMESPACE", help="Kubernetes namespace (knative).")]
BrokerOpt = Annotated[str, typer.Option("--broker", envvar="LEPTON_BROKER", help="Knative Broker for triggers (knative).")]
ImageOpt = Annotated[Optional[str], typer.Option("--image", envvar="LEPTON_IMAGE", help="Runtime image (knative).", show_default=False)]
BucketOpt = Annotated[str, typer.Option("--artifact-bucket", envvar="LEPTON_ARTIFACT_BUCKET", help="S3 bucket for artifacts (knative).")]
KubeconfigOpt = Annotated[Optional[str], typer.Option("--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (knative).", show_default=False)]


def _target(namespace: str, broker: str, image: str | None, bucket: str, digest: str) -> Any:
    from lepton_knative.deploy import artifact_url
    from lepton_knative.manifests import DEFAULT_IMAGE, Target

    return Target(namespace=namespace, broker=broker, image=image or DEFAULT_IMAGE, artifact_url=artifact_url(bucket, digest),
                  digest=digest, s3_endpoint=os.environ.get("LEPTON_S3_ENDPOINT_URL") or None)


def deploy_knative(target: str, *, wait: bool, as_json: bool, namespace: str, broker: str, image: str | None,
                   bucket: str, kubeconfig: str | None) -> None:
    from lepton.cli.platform import console, emit_json
    from lepton.loader import load_functions, split_target
    from lepton.packaging import package
    from lepton_knative.cluster import Cluster
    from lepton_knative.deploy import apply_all, render_all, upload_artifact

    with console().status("packaging...") as status:
        functions = load_functions(target)
        artifact = package(split_target(target)[0], functions)
        objects = render_all(functions, _target(namespace, broker, image, bucket, artifact.digest))
        cluster = Cluster(kubeconfig=kubeconfig)
        status.update(f"uploading the artifact to s3://{bucket} ({artifact.digest[:19]}...)")
        upload_artifact(artifact.data, artifact.digest, bucket, endpoint_url=os.environ.get("LEPTON_S3_ENDPOINT_URL") or None,
                        region=os.environ.get("AWS_REGION"))
        status.update(f"applying {len(objects)} objects to namespace {namespace}")
        results = apply_all(cluster, objects, wait=wait, progress=lambda text: status.update(f"waiting: {text}"))
    if as_json:
        emit_json(results)
        return
    for r in results:
        typer.echo(f"{r['function']}  {r['revision']}  {r['status']}  {r['url'] or '-'}")


def register(app: typer.Typer) -> None:
    @app.command()
    def render(
        target: Annotated[str, typer.Argument(metavar="FILE[:NAME]")],
        namespace: NamespaceOpt = "default", broker: BrokerOpt = "default", image: ImageOpt = None,
        bucket: BucketOpt = "lepton-artifacts",
    ) -> None:
        """Print the Knative YAML (Service, Triggers, PingSources) for the functions in FILE."""
        import yaml

        from lepton.loader import load_functions, split_target
        from lepton.packaging import package
        from lepton_knative.deploy import render_all

        functions = load_functions(target)
        artifact = package(split_target(target)[0], functions)
        objects = render_all(functions, _target(namespace, broker, image, bucket, artifact.digest))
        typer.echo(yaml.safe_dump_all(objects, sort_keys=False), nl=False)
