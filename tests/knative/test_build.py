"""`lepton build`: a function's image = the runtime image + its pinned requirements + its baked
artifact. The fast tests check the build context it writes and its errors; the `images` test
builds the digits image for real and serves a digit from it (LEPTON_IMAGE_TESTS=1)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from lepton.cli.main import main
from lepton_knative.build import Builder, BuildError, Context, RequirementError, find_builder, pin, works
from tests.helpers import free_port
from tests.knative import images

ROOT = images.ROOT
DIGITS = ROOT / "functions" / "digits" / "main.py"
TWO_SETS = """
import lepton

@lepton.function(requirements=["pillow"])
def thumbnail(size: int) -> int:
    return size

@lepton.function(requirements=["pillow", "numpy"])
def stats(n: int) -> int:
    return n

@lepton.function(requirements=["numpy"])
def mean(n: int) -> int:
    return n
"""


def lepton(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process: (exit status, stdout, stderr)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_dockerfile_only_writes_one_context_for_functions_that_share_requirements(tmp_path, capsys):
    context = tmp_path / "ctx"
    code, out, err = lepton(
        capsys,
        "build",
        str(DIGITS),
        "--tag",
        "localhost/lepton-digits:test",
        "--base",
        "localhost/runtime:1",
        "--dockerfile-only",
        "--context",
        str(context),
    )
    assert code == 0, err
    artifacts = list((context / "artifacts").iterdir())
    assert len(artifacts) == 1
    data = artifacts[0].read_bytes()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert artifacts[0].name == f"{digest.removeprefix('sha256:')}.tar.gz"
    with tarfile.open(artifacts[0]) as tar:
        assert "src/main.py" in tar.getnames() and "src/weights.pt" in tar.getnames()
    # torch and pillow, pinned to what is installed here (torch keeps its +cpu build label).
    assert (context / "requirements.txt").read_text() == (
        f"pillow=={importlib.metadata.version('pillow')}\ntorch=={importlib.metadata.version('torch')}\n"
    )
    dockerfile = (context / "Dockerfile").read_text()
    assert out == f"# context: {context}  (image localhost/lepton-digits:test)\n{dockerfile}\n"
    lines = dockerfile.splitlines()
    assert "FROM localhost/runtime:1" in lines
    assert f"COPY artifacts/{artifacts[0].name} /opt/lepton/artifacts/{artifacts[0].name}" in lines
    assert f'LABEL dev.lepton.artifact="{digest}" dev.lepton.functions="digits,digits-form,digits-single,digits-upload"' in lines
    assert "pip install --no-cache-dir" in dockerfile and "/opt/lepton/packages.txt" in dockerfile
    assert lines.index("USER root") < lines.index("USER 10001") == len(lines) - 2
    assert {"ARG PIP_FIND_LINKS=", "ARG PIP_EXTRA_INDEX_URL=", "ARG PIP_CONSTRAINT=", "ARG PIP_CERT="} <= set(lines)


def test_functions_with_different_requirements_get_an_image_each(tmp_path, capsys):
    source = write(tmp_path / "app" / "main.py", TWO_SETS)
    context = tmp_path / "ctx"
    code, out, err = lepton(
        capsys, "build", str(source), "--tag", "registry.example.com:5000/team/app:1.0", "--dockerfile-only", "--context", str(context)
    )
    assert code == 0, err
    numpy, pillow = importlib.metadata.version("numpy"), importlib.metadata.version("pillow")
    assert sorted(p.name for p in context.iterdir()) == ["mean", "stats", "thumbnail"]
    assert (context / "mean" / "requirements.txt").read_text() == f"numpy=={numpy}\n"
    assert (context / "stats" / "requirements.txt").read_text() == f"numpy=={numpy}\npillow=={pillow}\n"
    assert f"# context: {context / 'stats'}  (image registry.example.com:5000/team/app-stats:1.0)" in out.splitlines()
    from lepton_knative.manifests import DEFAULT_IMAGE

    assert out.count(f"FROM {DEFAULT_IMAGE}\n") == 3
    # One artifact for the file, baked into each image.
    assert len({p.name for p in context.glob("*/artifacts/*.tar.gz")}) == 1


def test_one_function_of_a_file(tmp_path, capsys):
    source = write(tmp_path / "app" / "main.py", TWO_SETS)
    code, out, err = lepton(capsys, "build", f"{source}:mean", "-t", "app", "--dockerfile-only", "--context", str(tmp_path / "ctx"))
    assert code == 0, err
    assert 'dev.lepton.functions="mean"' in out and (tmp_path / "ctx" / "Dockerfile").is_file()


@pytest.mark.parametrize(
    "requirement, expected",
    [
        ("torch", "torch==2.13.0+cpu"),
        ("torch==2.1.0", "torch==2.1.0"),
        ("Pillow>=10", "Pillow==13.0.0"),
        ("uvicorn[standard]; python_version >= '3.11'", 'uvicorn[standard]==0.54.0; python_version >= "3.11"'),
        ("mypkg @ https://example.com/mypkg-1.0.tar.gz", "mypkg @ https://example.com/mypkg-1.0.tar.gz"),  # one build already
        ("torch==2.*", "torch==2.13.0+cpu"),  # a wildcard is a range: checked, then pinned
    ],
)
def test_requirements_are_pinned_to_exact_versions(requirement, expected):
    installed = {"torch": "2.13.0+cpu", "pillow": "13.0.0", "uvicorn": "0.54.0"}
    assert pin(requirement, lambda name: installed.get(name.lower())) == expected


@pytest.mark.parametrize(
    "requirement, message",
    [
        ("notinstalled", "requirement 'notinstalled' is not pinned and notinstalled is not installed here"),
        ("torch>=3", "requirement 'torch>=3': the installed torch 2.13.0+cpu does not satisfy it; pin a version"),
        ("torch >>= 2", "'torch >>= 2' is not a pip requirement"),
    ],
)
def test_requirements_that_cannot_be_pinned(requirement, message):
    with pytest.raises(RequirementError) as info:
        pin(requirement, lambda name: "2.13.0+cpu" if name == "torch" else None)
    assert message in str(info.value)


def test_an_unpinned_requirement_that_is_not_installed_is_one_line(tmp_path, capsys):
    source = write(
        tmp_path / "app" / "main.py",
        'import lepton\n\n@lepton.function(requirements=["lepton-no-such-package"])\ndef f(x: int) -> int:\n    return x\n',
    )
    code, out, err = lepton(capsys, "build", str(source), "-t", "app", "--dockerfile-only", "--context", str(tmp_path / "ctx"))
    assert code == 2 and out == ""
    assert err == (
        "error: requirement 'lepton-no-such-package' is not pinned and lepton-no-such-package is not installed here "
        "to take its version from; pin it (e.g. 'lepton-no-such-package==1.2.3') or install it\n"
    )


def fake_tools(folder: Path, **exit_codes: int) -> None:
    """Executables named like builders whose `info` exits with the given status."""
    folder.mkdir(exist_ok=True)
    for name, code in exit_codes.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\nexit {code}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_first_builder_that_works_is_used(tmp_path, monkeypatch):
    fake_tools(tmp_path / "bin", docker=1, podman=0, buildah=0)  # a docker client with no engine fails `docker info`
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    assert not works("docker") and works("podman") and not works("kubectl")
    assert find_builder().name == "podman"
    assert find_builder("buildah").name == "buildah"
    with pytest.raises(BuildError, match=r"docker cannot build here \(not installed, or `docker info` fails\)"):
        find_builder("docker")
    with pytest.raises(BuildError, match="no container builder works here: .* --dockerfile-only"):
        find_builder(probe=lambda name: False)


def test_build_without_a_working_builder_is_one_line(tmp_path, capsys, monkeypatch):
    fake_tools(tmp_path / "bin", docker=1)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.path.dirname(sys.executable)}")
    source = write(tmp_path / "app" / "main.py", TWO_SETS)
    code, out, err = lepton(capsys, "build", f"{source}:thumbnail", "-t", "app")
    assert code == 1 and out == ""
    assert err.startswith("error: no container builder works here") and err.count("\n") == 1


def test_builder_commands(tmp_path):
    context = Context(tmp_path, "app:1", ("f",), "sha256:" + "0" * 64, ())
    args = Builder("buildah").command(context, {"PIP_INDEX_URL": "http://mirror/simple"}, ["/w:/w:ro"], tmp_path / "iid")
    assert args == [
        "buildah",
        "bud",
        "-f",
        str(tmp_path / "Dockerfile"),
        "-t",
        "app:1",
        "--iidfile",
        str(tmp_path / "iid"),
        "--build-arg",
        "PIP_INDEX_URL=http://mirror/simple",
        "-v",
        "/w:/w:ro",
        str(tmp_path),
    ]
    assert Builder("docker").command(context, {}, [], tmp_path / "iid")[:2] == ["docker", "build"]
    with pytest.raises(BuildError, match="docker build cannot mount host folders"):
        Builder("docker").command(context, {}, ["/w:/w:ro"], tmp_path / "iid")


def test_a_tag_with_a_digest_is_refused(tmp_path, capsys):
    code, _, err = lepton(capsys, "build", str(DIGITS), "-t", "app@sha256:abc", "--dockerfile-only", "--context", str(tmp_path))
    assert code == 1 and err.startswith("error: --tag 'app@sha256:abc'")


# --- the real thing -----------------------------------------------------------------------------


@pytest.mark.images
def test_digits_image_serves_a_real_digit(runtime_image, tmp_path):
    """`lepton build` of functions/digits with buildah (torch from this machine's wheels), then
    the image run as a Knative pod would run it: PORT, LEPTON_FUNCTION, LEPTON_ARTIFACT_DIGEST
    and nothing else; the artifact is baked in, so no platform is needed."""
    from sklearn.datasets import load_digits

    tag = "localhost/lepton-digits:test"
    args = [sys.executable, "-m", "lepton.cli", "build", str(DIGITS), "--tag", tag, "--base", runtime_image, "--builder", "buildah"]
    for key, value in images.pip_build_args().items():
        args += ["--build-arg", f"{key}={value}"]
    for mount in images.pip_mounts():
        args += ["--volume", mount]
    started = time.monotonic()
    with (tmp_path / "build.log").open("w") as log, images.build_lock():  # no layer pruning meanwhile
        result = subprocess.run(
            args, stdout=subprocess.PIPE, stderr=log, text=True, timeout=1800, env={**os.environ, **images.buildah_env()}, cwd=ROOT
        )
    assert result.returncode == 0, (tmp_path / "build.log").read_text()[-6000:]
    print(f"lepton build: {time.monotonic() - started:.1f}s")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [r[:2] for r in rows] == [["digits", tag], ["digits-form", tag], ["digits-single", tag], ["digits-upload", tag]]
    digest = rows[0][2]
    assert images.image_config(tag)["Labels"]["dev.lepton.artifact"] == digest

    port = free_port()
    env = {"PORT": str(port), "LEPTON_FUNCTION": "digits", "LEPTON_ARTIFACT_DIGEST": digest}
    with images.run_container(tag, env=env, log=tmp_path / "pod.log") as pod:
        images.wait_http(f"http://127.0.0.1:{port}", "/readyz", timeout=120, container=pod)
        digits = load_digits()
        answers = [httpx.post(f"http://127.0.0.1:{port}/", json={"image": digits.images[i].tolist()}, timeout=30).json() for i in range(20)]
        assert sum(a["digit"] == int(digits.target[i]) for i, a in enumerate(answers)) >= 18, answers
        assert answers[0]["digit"] == int(digits.target[0]) and 0.5 < answers[0]["confidence"] <= 1
    with images.run_container(tag, env={}, command=["cat", "/opt/lepton/packages.txt"], log=tmp_path / "packages.log") as box:
        assert box.wait() == 0
        packages = box.output().split()
    assert f"torch=={importlib.metadata.version('torch')}" in packages and "fastapi==0.163.2" in packages
