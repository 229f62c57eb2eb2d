"""Deployable units: immutable, content-addressed artifacts built from a file or a folder.

An artifact is a gzip'd tar holding `lepton.json` (format, entrypoint, function specs,
requirements and a sha256 per file) and the source tree under `src/`. Entries are sorted
and their metadata zeroed, so the same input gives the same bytes and the same digest.
"""

from __future__ import annotations

import compileall
import fnmatch
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton.errors import ArtifactError, LoadError
from lepton.functions import Function

FORMAT = 1
MANIFEST = "lepton.json"
SKIP_DIRS = {"__pycache__", ".git", ".hg", ".venv", "venv", "node_modules", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
SKIP_SUFFIXES = {".pyc", ".pyo"}
IGNORE_FILE = ".leptonignore"
MAX_BYTES = 1 << 30


@dataclass(frozen=True)
class Artifact:
    """Bytes of an artifact and what they hold; `digest` is 'sha256:<hex>' of the bytes."""

    data: bytes
    manifest: dict[str, Any]

    @property
    def digest(self) -> str:
        """The artifact's identity: the platform stores it under this and checks it again
        before running it, so a revision always runs exactly the bytes that were deployed."""
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def functions(self) -> list[dict[str, Any]]:
        """The specs of the functions inside, as JSON, in name order: what the platform
        deploys without importing the code."""
        functions: list[dict[str, Any]] = self.manifest["functions"]
        return functions

    def write(self, folder: Path) -> Path:
        """Save the bytes as `<hex>.tar.gz` in `folder` (made if missing) and return that path,
        e.g. for `python -m lepton.runtime --artifact PATH`."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.digest.removeprefix('sha256:')}.tar.gz"
        path.write_bytes(self.data)
        return path


def source_root(target: Path) -> tuple[Path, Path]:
    """(folder to package, entry file): a file packages its folder; a folder needs main.py."""
    if target.is_dir():
        entry = target / "main.py"
        if not entry.is_file():
            raise LoadError(f"{target}: a folder to deploy needs a main.py (or deploy a file in it)")
        return target.resolve(), entry.resolve()
    if not target.is_file():
        raise LoadError(f"{target}: no such file or folder")
    return target.resolve().parent, target.resolve()


def collect_files(root: Path) -> list[Path]:
    """Files under root, sorted, minus caches, VCS folders and `.leptonignore` patterns."""
    patterns = []
    ignore = root / IGNORE_FILE
    if ignore.is_file():
        patterns = [ln.strip() for ln in ignore.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for filename in filenames:
            path = Path(dirpath) / filename
            rel = path.relative_to(root).as_posix()
            if path.suffix in SKIP_SUFFIXES or path.is_symlink():
                continue
            if any(fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(filename, pat) for pat in patterns):
                continue
            found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def package(target: str | Path, functions: dict[str, Function] | None = None) -> Artifact:
    """Build the artifact for the functions in `target` (a file, or a folder with main.py).

    Pass `functions` when they are already imported (the CLI does) to skip importing again.
    """
    root, entry = source_root(Path(target))
    if functions is None:
        from lepton.loader import load_functions

        functions = load_functions(str(entry))
    files = collect_files(root)
    total = sum(p.stat().st_size for p in files)
    if total > MAX_BYTES:
        raise ArtifactError(f"{root}: {total / 2**20:.0f} MiB is over the 1 GiB artifact limit; list big files in {IGNORE_FILE}")
    digests = {p.relative_to(root).as_posix(): _sha256_file(p) for p in files}
    manifest = {
        "format": FORMAT,
        "entrypoint": entry.relative_to(root).as_posix(),
        "functions": [functions[name].spec.model_dump(mode="json") for name in sorted(functions)],
        "requirements": sorted({r for fn in functions.values() for r in fn.spec.requirements}),
        "files": digests,
    }
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=6) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            _add(tar, MANIFEST, io.BytesIO(json.dumps(manifest, sort_keys=True, indent=1).encode()), 0o644)
            for path in files:
                mode = 0o755 if os.access(path, os.X_OK) else 0o644
                with path.open("rb") as fh:
                    _add(tar, "src/" + path.relative_to(root).as_posix(), fh, mode)
    return Artifact(buf.getvalue(), manifest)


def _add(tar: tarfile.TarFile, name: str, fh: Any, mode: int) -> None:
    fh.seek(0, io.SEEK_END)
    info = tarfile.TarInfo(name)
    info.size = fh.tell()
    fh.seek(0)
    info.mode, info.mtime, info.uid, info.gid, info.uname, info.gname = mode, 0, 0, 0, "", ""
    tar.addfile(info, fh)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, digest: str | None) -> str:
    """sha256 of the artifact file, checked against `digest` when given."""
    actual = "sha256:" + _sha256_file(path)
    if digest is not None and actual != (digest if digest.startswith("sha256:") else "sha256:" + digest):
        raise ArtifactError(f"{path}: digest mismatch: expected {digest}, got {actual}; refusing to run it")
    return actual


def _extract(tar: tarfile.TarFile, dest: Path) -> None:
    """Extract with the "data" filter (no links out, no devices, no absolute or `..` paths).
    Python 3.11 has it from 3.11.4 on; on older patch releases (Debian bookworm's 3.11.2)
    the same checks are made here, for the only members an artifact has: files and folders."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if not (member.isfile() or member.isdir()) or member.name.startswith("/") or ".." in parts:
            raise tarfile.TarError(f"refusing member {member.name!r}")
    tar.extractall(dest)


def unpack(path: Path, dest_root: Path, digest: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Verify and extract an artifact once into dest_root/<hex>/; returns (folder, manifest)."""
    actual = verify(path, digest)
    dest = dest_root / actual.removeprefix("sha256:")
    if (dest / ".complete").exists():
        return dest, json.loads((dest / MANIFEST).read_text())
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest_root))
    try:
        with tarfile.open(path, "r:gz") as tar:
            _extract(tar, tmp)
        manifest = json.loads((tmp / MANIFEST).read_text())
        if manifest.get("format") != FORMAT:
            raise ArtifactError(f"{path}: unknown artifact format {manifest.get('format')!r}")
        for rel, sha in manifest["files"].items():
            if _sha256_file(tmp / "src" / rel) != sha:
                raise ArtifactError(f"{path}: file {rel} does not match its recorded sha256")
        # Bytecode next to the checked sources, once: replicas cannot write it (their code is
        # read-only) and would compile the module at every start.
        compileall.compile_dir(tmp / "src", quiet=2)
        (tmp / ".complete").touch()
        try:
            tmp.rename(dest)
        except OSError:  # another process unpacked the same artifact first
            shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, OSError, KeyError, json.JSONDecodeError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ArtifactError(f"{path}: not a valid Lepton artifact: {exc}") from None
    except ArtifactError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest, manifest


def load_artifact_function(path: str | Path, name: str | None, digest: str | None = None) -> Function:
    """Start-up path of a replica or container: verify, unpack, import, pick the function."""
    from lepton.loader import load_function
    from lepton.settings import lepton_home

    folder, manifest = unpack(Path(path), lepton_home() / "unpacked", digest)
    entry = folder / "src" / manifest["entrypoint"]
    return load_function(f"{entry}:{name}" if name else str(entry))
