"""Artifacts: byte-for-byte reproducible, content-addressed, verified before they run."""

from __future__ import annotations

import io
import shutil
import tarfile

import httpx
import pytest

import lepton
from lepton.artifacts import unpack
from lepton.errors import ArtifactError
from tests.helpers import FUNCTIONS


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / "project"
    shutil.copytree(FUNCTIONS / "kinds", folder)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 1000)
    (folder / "__pycache__").mkdir(exist_ok=True)
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (folder / ".leptonignore").write_text("*.log\n")
    (folder / "debug.log").write_text("noise")
    return folder


def test_same_input_gives_the_same_bytes(project, tmp_path):
    first = lepton.package(project / "main.py")
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    second = lepton.package(copy / "main.py")
    assert first.data == second.data and first.digest == second.digest
    assert first.digest.startswith("sha256:") and len(first.digest) == 71
    assert sorted(first.manifest["files"]) == [".leptonignore", "main.py", "weights.bin"]
    assert {fn["name"] for fn in first.functions} >= {"add", "checkout", "echo-event"}


def test_any_change_changes_the_digest(project):
    before = lepton.package(project / "main.py").digest
    (project / "weights.bin").write_bytes(b"\x00\x02" * 1000)
    assert lepton.package(project / "main.py").digest != before


def test_folder_needs_main_py(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(lepton.LoadError, match="needs a main.py"):
        lepton.package(tmp_path / "empty")


def test_the_runtime_starts_from_an_artifact_alone(project, tmp_path, serve):
    artifact = lepton.package(project)
    path = artifact.write(tmp_path / "artifacts")
    shutil.rmtree(project)  # nothing but the artifact is left
    fn = serve(f"--artifact {path} --digest {artifact.digest} --function add")
    assert httpx.post(fn.url, json={"a": 1, "b": 2}).json() == 3


def test_a_tampered_artifact_is_refused(project, tmp_path, serve):
    artifact = lepton.package(project)
    path = artifact.write(tmp_path / "artifacts")
    path.write_bytes(path.read_bytes()[:-20] + b"\x00" * 20)
    with pytest.raises(ArtifactError, match="digest mismatch"):
        unpack(path, tmp_path / "unpacked", artifact.digest)
    fn = serve(f"--artifact {path} --digest {artifact.digest} --function add", ready_path=None)
    assert fn.proc.wait(15) == 1
    assert "digest mismatch" in fn.output()


def test_a_file_changed_inside_the_archive_is_caught(project, tmp_path):
    artifact = lepton.package(project)
    forged = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(artifact.data), mode="r:gz") as src, tarfile.open(fileobj=forged, mode="w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()
            if member.name == "src/main.py":
                data = data.replace(b"return a + b", b"return a - b")
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    path = tmp_path / "forged.tar.gz"
    path.write_bytes(forged.getvalue())
    with pytest.raises(ArtifactError, match="main.py does not match"):
        unpack(path, tmp_path / "unpacked")


@pytest.mark.parametrize("has_data_filter", [True, False])
def test_links_and_escaping_paths_are_refused_on_every_python_3_11(project, tmp_path, monkeypatch, has_data_filter):
    """Python 3.11 before 3.11.4 (Debian bookworm's 3.11.2) has no tar extraction filters."""
    if not has_data_filter:
        monkeypatch.delattr(tarfile, "data_filter")
    artifact = lepton.package(project)
    good = tmp_path / "good.tar.gz"
    good.write_bytes(artifact.data)
    folder, manifest = unpack(good, tmp_path / "out", artifact.digest)
    assert (folder / "src" / "weights.bin").read_bytes() == b"\x00\x01" * 1000 and manifest["functions"]
    for name, kind in (("../escape.txt", tarfile.REGTYPE), ("src/link", tarfile.SYMTYPE)):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            member = tarfile.TarInfo(name)
            member.type = kind
            member.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
            tar.addfile(member, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        bad = tmp_path / f"bad-{kind!r}.tar.gz"
        bad.write_bytes(buffer.getvalue())
        with pytest.raises(ArtifactError, match="not a valid Lepton artifact"):
            unpack(bad, tmp_path / "bad-out")
    assert not (tmp_path / "escape.txt").exists()
