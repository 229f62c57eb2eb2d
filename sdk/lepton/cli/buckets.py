"""`lepton bucket ...`: buckets and objects, with progress bars for large transfers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from lepton.cli.options import OutputOpt, PlatformOpt, TokenOpt, check_output, client
from lepton.cli.output import console, emit_json, print_table

PROGRESS_FROM = 8 << 20

bucket_app = typer.Typer(help="Buckets and objects: create, ls, put, get, rm, url.", no_args_is_help=True)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Any]:
    """A transfer bar on stderr for transfers of 8 MiB and more; yields `advance(n)`."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
        console=console(),
        disable=total is not None and total < PROGRESS_FROM,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def _read(path: Path, advance: Any, chunk: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while data := fh.read(chunk):
            advance(len(data))
            yield data


@bucket_app.command()
def create(name: str, platform: PlatformOpt = None, token: TokenOpt = None) -> None:
    """Create a bucket (no error if it exists)."""
    with client(platform, token) as api:
        created = api.request("PUT", f"/v1/buckets/{name}").json()["created"]
    typer.echo(f"created bucket {name}" if created else f"bucket {name} already exists")


@bucket_app.command("ls")
def list_(
    name: Annotated[str | None, typer.Argument(help="Bucket; without it, list the buckets.")] = None,
    prefix: Annotated[str, typer.Option(help="Only keys starting with this.")] = "",
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """List buckets, or the objects in one."""
    as_json = check_output(output)
    from lepton.buckets import Bucket

    with client(platform, token) as api:
        rows = api.request("GET", "/v1/buckets").json() if name is None else list(Bucket(name, api).list(prefix))
    if as_json:
        emit_json(rows)
        return
    from datetime import datetime

    from rich.table import Table

    if name is None:
        table = Table("BUCKET", "CREATED", box=None)
        for b in rows:
            table.add_row(b["name"], datetime.fromtimestamp(b["created"]).strftime("%Y-%m-%d %H:%M:%S"))
    else:
        table = Table("KEY", "SIZE", "MODIFIED", "ETAG", box=None)
        for o in rows:
            table.add_row(o["key"], str(o["size"]), datetime.fromtimestamp(o["modified"]).strftime("%Y-%m-%d %H:%M:%S"), o["etag"])
    print_table(table)


@bucket_app.command()
def put(
    name: str,
    key: str,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    content_type: Annotated[str | None, typer.Option("--content-type", help="Default: guessed from the key.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
    output: OutputOpt = "table",
) -> None:
    """Upload FILE as KEY (streamed)."""
    as_json = check_output(output)
    import mimetypes

    from lepton.buckets import Bucket

    size = file.stat().st_size
    headers = {"content-length": str(size), "content-type": content_type or mimetypes.guess_type(key)[0] or "application/octet-stream"}
    with client(platform, token) as api, progress(f"put {key}", size) as advance:
        info = api.request("PUT", Bucket(name, api).object_path(key), content=_read(file, advance), headers=headers).json()
    if as_json:
        emit_json(info)
    else:
        typer.echo(f"{name}/{info['key']}  {info['size']} bytes  etag {info['etag']}")


@bucket_app.command()
def get(
    name: str,
    key: str,
    out: Annotated[Path | None, typer.Option("--output-file", "-o", help="Write here; default: stdout.")] = None,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download KEY (streamed) to a file or stdout."""
    from lepton.buckets import Bucket

    with client(platform, token) as api, api.open("GET", Bucket(name, api).object_path(key)) as response:
        total = int(response.headers.get("content-length", 0)) or None
        tmp = out.with_name(out.name + ".part") if out else None
        sink = tmp.open("wb") if tmp else sys.stdout.buffer
        try:
            with progress(f"get {key}", total if out else 0) as advance:
                for chunk in response.iter_bytes(1 << 20):
                    sink.write(chunk)
                    advance(len(chunk))
        except BaseException:
            if tmp:
                sink.close()
                tmp.unlink(missing_ok=True)
            raise
    if tmp and out:
        sink.close()
        tmp.replace(out)
        typer.echo(f"wrote {out} ({out.stat().st_size} bytes)", err=True)


@bucket_app.command()
def rm(
    name: str,
    key: Annotated[str | None, typer.Argument(help="Object; without it, remove the bucket.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Remove a bucket with its objects.")] = False,
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Remove an object, or a bucket (empty unless --force)."""
    from lepton.buckets import Bucket

    with client(platform, token) as api:
        if key is None:
            api.request("DELETE", f"/v1/buckets/{name}", params={"force": force})
            typer.echo(f"removed bucket {name}")
        else:
            Bucket(name, api).delete(key)
            typer.echo(f"removed {name}/{key}")


@bucket_app.command()
def url(
    name: str,
    key: str,
    expires: Annotated[int, typer.Option(help="Seconds the URL stays valid (at most 7 days).")] = 3600,
    method: Annotated[str, typer.Option(help="GET to download, PUT to upload.")] = "GET",
    platform: PlatformOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print a signed URL for KEY that works without a token until it expires."""
    from lepton.buckets import Bucket

    with client(platform, token) as api:
        typer.echo(Bucket(name, api).url(key, expires=expires, method=method.upper()))
