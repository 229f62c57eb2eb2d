"""Real container images in tests, built and run with buildah (these machines have no Docker
engine and no registry; see /work/shared/recipes/container-images.md).

    base_image()       localhost/debian-python:bookworm: Debian's python3 (3.11) from debootstrap
    runtime_image()    knative/Dockerfile, target `runtime`, built FROM the base image
    platform_image()   the same file, target `platform`
    run_container(image, env=..., command=..., log=..., mounts=...) -> Container, with .stop()
    wait_http(url, path)
    image_config(image), pip_build_args(), pip_mounts(), buildah_env(), build_lock()

Images are tagged with a hash of what goes into them (pyproject.toml, README.md, sdk/, platform/,
knative/, the base image), so an unchanged tree reuses them and a changed one rebuilds. Storage
is overlay where it works, else vfs (see storage_driver); isolation is chroot. pip in
the build gets this machine's pip settings (`pip config list`: find-links, extra indexes,
constraints, CA bundle) as build args, with the local folders they name mounted read-only, so
nothing large is downloaded. Every helper skips the test when buildah is missing, or fails it
when `CI` is set (CI installs buildah and debootstrap; see .ci/run).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "knative" / "Dockerfile"
BASE = "localhost/debian-python:bookworm"
RUNTIME = "localhost/lepton-runtime"
PLATFORM = "localhost/lepton-platform"
PIP_SETTINGS = ("index-url", "find-links", "extra-index-url", "constraint", "cert")
BUILDAH_NOISE = re.compile(r"(subprocess exited (with status \d+|on \w+)|Error: exit status \d+|.*exit status \d+ from .*)$")
LOCK = Path(tempfile.gettempdir()) / "lepton-test-images.lock"


def require_buildah() -> None:
    """Skip (or fail under CI) unless buildah and debootstrap are here and we are root."""
    missing = [tool for tool in ("buildah", "debootstrap") if _which(tool) is None]
    reason = ""
    if missing:
        reason = f"{' and '.join(missing)} not installed (apt-get install -y buildah debootstrap; .ci/run does it)"
    elif os.geteuid() != 0:
        reason = "building and running images with buildah's chroot isolation needs root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"image tests: {reason}", pytrace=False)
        pytest.skip(reason)


def _which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")


@functools.cache
def storage_driver() -> str:
    """$STORAGE_DRIVER, else overlay when it works here, else vfs. vfs works everywhere but
    copies every layer: a build takes about 2.5 times as long and each `buildah from` of the
    runtime image about 17 s instead of under one."""
    if os.environ.get("STORAGE_DRIVER"):
        return os.environ["STORAGE_DRIVER"]
    probe = subprocess.run(["buildah", "--storage-driver", "overlay", "from", "--quiet", "scratch"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "vfs"
    container = probe.stdout.strip()
    mounted = subprocess.run(["buildah", "--storage-driver", "overlay", "mount", container], capture_output=True).returncode == 0
    subprocess.run(["buildah", "--storage-driver", "overlay", "rm", container], capture_output=True)
    return "overlay" if mounted else "vfs"


def buildah_env() -> dict[str, str]:
    """The settings of these helpers as environment variables, which buildah reads when another
    tool (`lepton build`) runs it: the same store, chroot isolation (no OCI runtime), and a
    layer cache (an unchanged function image is not rebuilt)."""
    return {"STORAGE_DRIVER": storage_driver(), "BUILDAH_ISOLATION": "chroot", "BUILDAH_LAYERS": "true"}


def _buildah() -> list[str]:
    return ["buildah", "--storage-driver", storage_driver()]


def buildah(*args: str, timeout: float = 120) -> str:
    """Run `buildah --storage-driver DRIVER ARGS`; its stdout, or an AssertionError with stderr."""
    result = subprocess.run([*_buildah(), *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise AssertionError(f"buildah {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result.stdout


def image_id(name: str) -> str | None:
    result = subprocess.run(
        [*_buildah(), "inspect", "--type", "image", "--format", "{{.FromImageID}}", name],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def image_config(name: str) -> dict:
    """The image's OCI config (Env, Entrypoint, Cmd, User, Labels, ...)."""
    return json.loads(buildah("inspect", "--type", "image", name))["OCIv1"]["config"]


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """One image build at a time on this machine, whichever pytest process asks."""
    with LOCK.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# The long builds running now, each in a process group of its own: `hurry` raises their
# priority when a test waits for them, `stop_prebuild` ends them with the session.
_BUILDS: set[subprocess.Popen] = set()
_PREBUILD: list[threading.Thread] = []


def _run_logged(args: Sequence[str], log: Path, *, timeout: float, env: Mapping[str, str] | None = None) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(args)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(args),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        _BUILDS.add(proc)
        try:
            returncode = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            _BUILDS.discard(proc)
    if returncode != 0:
        tail = log.read_text(errors="replace")[-6000:]
        raise AssertionError(f"{args[0]} exited {returncode} (log: {log}):\n{tail}")


def _log_dir() -> Path:
    folder = Path(tempfile.gettempdir()) / "lepton-test-images"
    folder.mkdir(exist_ok=True)
    return folder


# --- the base image ------------------------------------------------------------------------------


def debian_mirror() -> str:
    """The Debian archive apt uses here (one-line or deb822 sources), for debootstrap."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.is_file() and path.suffix in (".list", ".sources", ""):
            texts.append((path.suffix, path.read_text(errors="replace")))
    for suffix, text in texts:
        if suffix == ".sources":
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.startswith(("#", " ")):
                        key, _, value = line.partition(":")
                        fields[key.strip().lower()] = value.split()
                if "deb" in fields.get("types", []) and "bookworm" in fields.get("suites", []) and fields.get("uris"):
                    return fields["uris"][0]
        else:
            for line in text.splitlines():
                words = [w for w in line.split() if not w.startswith("[") and not w.endswith("]")]
                if len(words) >= 3 and words[0] == "deb" and words[2] == "bookworm":
                    return words[1]
    return "http://deb.debian.org/debian"


def base_image() -> str:
    """`localhost/debian-python:bookworm`, made once with debootstrap (minbase + python3-venv)."""
    require_buildah()
    if image_id(BASE):
        return BASE
    with build_lock():
        if image_id(BASE):
            return BASE
        log = _log_dir() / "debian-python.log"
        log.write_text("")
        container = buildah("from", "scratch").strip()
        try:
            rootfs = buildah("mount", container).strip()
            _run_logged(
                [
                    _which("debootstrap") or "debootstrap",
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    "bookworm",
                    rootfs,
                    debian_mirror(),
                ],
                log,
                timeout=900,
            )
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info"):
                for child in (Path(rootfs) / junk).glob("*"):
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            buildah("umount", container)
            buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3",
                container,
            )
            buildah("commit", "--quiet", container, BASE, timeout=600)
        finally:
            subprocess.run([*_buildah(), "rm", container], capture_output=True)
    return BASE


# --- the Lepton images ---------------------------------------------------------------------------


def context_hash() -> str:
    """sha256 over the files the Dockerfile copies (minus tests and caches) and the base image."""
    h = hashlib.sha256()
    files = [ROOT / "pyproject.toml", ROOT / "requirements.lock", ROOT / "README.md"]
    for folder in ("sdk", "platform", "knative"):
        for path in sorted((ROOT / folder).rglob("*")):
            parts = path.relative_to(ROOT).parts
            if (
                path.is_file()
                and not any(p in ("__pycache__", "tests") or p.endswith(".egg-info") for p in parts)
                and path.suffix not in (".pyc", ".pyo")
            ):
                files.append(path)
    for path in files:
        h.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    h.update((image_id(BASE) or "").encode())
    return h.hexdigest()[:16]


@functools.cache
def pip_settings() -> dict[str, str]:
    """This machine's pip settings that matter in a build: {'find-links': ..., 'cert': ...}."""
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    ranked: dict[str, tuple[int, str]] = {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    for line in result.stdout.splitlines():
        key, sep, value = line.partition("=")
        section, _, name = key.rpartition(".")
        if sep and name in PIP_SETTINGS and section in rank:
            value = value.strip().strip("'\"")
            if rank[section] >= ranked.get(name, (-1, ""))[0]:
                ranked[name] = (rank[section], value)
    settings = {name: value for name, (_, value) in ranked.items()}
    for name in PIP_SETTINGS:
        if os.environ.get("PIP_" + name.upper().replace("-", "_")):
            settings[name] = os.environ["PIP_" + name.upper().replace("-", "_")]
    return settings


def pip_build_args() -> dict[str, str]:
    """PIP_FIND_LINKS=..., PIP_EXTRA_INDEX_URL=..., as build args for knative/Dockerfile."""
    return {"PIP_" + name.upper().replace("-", "_"): value for name, value in pip_settings().items()}


def pip_mounts() -> list[str]:
    """Read-only bind mounts (`SRC:SRC:ro`) of the local paths pip settings name, so the same
    settings work inside a build. A PEP 503 index folder `.../simple` is mounted with its
    parent, where its pages' relative links to the files point."""
    paths: set[Path] = set()
    for value in pip_settings().values():
        for word in value.split():
            path = Path(word.removeprefix("file://")) if word.startswith(("file://", "/")) else None
            if path is None or not path.exists():
                continue
            paths.add(path.parent if path.name == "simple" else path)
    kept = sorted(p for p in paths if not any(q != p and q in p.parents for q in paths))
    return [f"{p}:{p}:ro" for p in kept]


def build_image(target: str, name: str, *, log: Path | None = None) -> str:
    """`buildah bud` of knative/Dockerfile's TARGET FROM the base image, tagged NAME:<hash>;
    reused when already built. Older tags of NAME are removed."""
    base = base_image()
    tag = f"{name}:{context_hash()}"
    if image_id(tag):
        return tag
    with build_lock():
        if image_id(tag):
            return tag
        log = log or _log_dir() / f"{name.rpartition('/')[2]}.log"
        log.write_text("")
        args = [
            *_buildah(),
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--quiet",
            "-f",
            str(DOCKERFILE),
            "--target",
            target,
            "--build-arg",
            f"BASE={base}",
        ]
        for key, value in pip_build_args().items():
            args += ["--build-arg", f"{key}={value}"]
        for mount in pip_mounts():
            args += ["-v", mount]
        started = time.monotonic()
        _run_logged([*args, "-t", tag, str(ROOT)], log, timeout=1800)
        with log.open("a") as out:
            out.write(f"built {tag} in {time.monotonic() - started:.1f}s\n")
        _remove_other_tags(name, keep=tag)
    return tag


def _remove_other_tags(name: str, keep: str) -> None:
    listing = subprocess.run([*_buildah(), "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True)
    for line in listing.stdout.split():
        if line.startswith(name + ":") and line != keep:
            subprocess.run([*_buildah(), "rmi", line], capture_output=True)


def runtime_image() -> str:
    """What function pods run: core dependencies only, uid 10001."""
    hurry()
    return build_image("runtime", RUNTIME)


def platform_image() -> str:
    """The platform service: runtime plus the s3 and knative extras, `lepton up` by default."""
    runtime_image()  # its layers are the platform's first ones (--layers reuses them)
    fresh = image_id(f"{PLATFORM}:{context_hash()}") is None
    tag = build_image("platform", PLATFORM)
    if fresh:  # both are current now: drop the layer cache of older trees
        with build_lock():
            subprocess.run([*_buildah(), "rmi", "--prune"], capture_output=True)
    return tag


def prebuild() -> threading.Thread | None:
    """Start building the images in a background thread at the lowest CPU priority, so the
    slow part (debootstrap and pip downloads, mostly waiting on the network) overlaps the
    tests that run before the image tests. The fixtures take the result, or build again and
    report the error themselves."""
    if any(_which(tool) is None for tool in ("buildah", "debootstrap")) or os.geteuid() != 0:
        return None

    def work() -> None:
        os.nice(19)  # per thread on Linux: this thread and the builders it starts yield to the tests
        with contextlib.suppress(BaseException):
            platform_image()

    thread = threading.Thread(target=work, name="image-prebuild", daemon=True)
    thread.start()
    _PREBUILD.append(thread)
    return thread


def hurry() -> None:
    """A test needs the images now: the background build runs at normal priority from here."""
    for thread in _PREBUILD:
        if thread.is_alive() and thread.native_id is not None:
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, thread.native_id, 0)
    for proc in list(_BUILDS):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PGRP, proc.pid, 0)


def stop_prebuild() -> None:
    """End a background build the session no longer needs (no build outlives its session)."""
    if not any(thread.is_alive() for thread in _PREBUILD):
        return
    for proc in list(_BUILDS):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    for thread in _PREBUILD:
        thread.join(60)


# --- running an image ----------------------------------------------------------------------------


@dataclass
class Container:
    """A command running in a working container made from an image (`buildah from` + `run`)."""

    name: str
    image: str
    proc: subprocess.Popen
    log: Path
    stopped: bool = field(default=False, repr=False)

    def output(self) -> str:
        """What the command wrote (stdout and stderr), without buildah's own lines about its exit."""
        text = self.log.read_text(errors="replace")
        return "".join(line for line in text.splitlines(keepends=True) if not BUILDAH_NOISE.match(line))

    def wait(self, timeout: float = 60) -> int:
        """Exit status of the command (after it ends by itself)."""
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM to the command (as the kubelet does; buildah itself would answer SIGTERM with
        SIGKILL), SIGKILL to everything after `timeout`; removes the working container.
        Returns the exit status buildah reports for the command."""
        if self.stopped:
            return self.proc.returncode
        self.stopped = True
        if self.proc.poll() is None:
            for pid in self._command_pids() or [-self.proc.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        subprocess.run([*_buildah(), "rm", self.name], capture_output=True)
        return self.proc.returncode

    def _command_pids(self) -> list[int]:
        """The command's processes: the first below buildah's own chroot helpers."""
        children: dict[int, list[tuple[int, str]]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                head, _, tail = stat.read_text().rpartition(")")
                pid, comm = int(head.partition(" (")[0]), head.partition(" (")[2]
                ppid, pgid = int(tail.split()[1]), int(tail.split()[2])
                if pgid == self.proc.pid:
                    children.setdefault(ppid, []).append((pid, comm))
        found, frontier = [], [self.proc.pid]
        while frontier:
            parent = frontier.pop()
            for pid, comm in children.get(parent, []):
                (frontier if "buildah" in comm else found).append(pid)
        return found

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_container(
    image: str, *, env: Mapping[str, str], command: Sequence[str] | None = None, log: Path, mounts: Iterable[str] = ()
) -> Container:
    """Start COMMAND (default: the image's ENTRYPOINT + CMD, as a pod would) in a fresh working
    container of IMAGE, in the background, with the host's network (a server it starts is on
    loopback) and exactly ENV on top of the image's own ENV. `mounts` are `SRC:DST[:ro]`.
    Output goes to LOG. Use as a context manager, or call `.stop()`."""
    require_buildah()
    if command is None:
        config = image_config(image)
        command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    assert command, f"{image} has no ENTRYPOINT or CMD and no command was given"
    name = f"lepton-test-{uuid.uuid4().hex[:10]}"
    buildah("from", "--pull=never", "--quiet", "--name", name, image, timeout=600)
    args = [*_buildah(), "run", "--isolation", "chroot", "--network", "host"]
    for key, value in env.items():
        args += ["--env", f"{key}={value}"]
    for mount in mounts:
        args += ["--volume", mount]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        # A session of its own: stop() signals the whole group, buildah and the command in it.
        proc = subprocess.Popen(
            [*args, name, "--", *command], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    return Container(name, image, proc, log)


def wait_http(url: str, path: str = "/healthz", *, timeout: float = 60, container: Container | None = None) -> httpx.Response:
    """GET url+path until it answers 200; fails early with the container's output if it exits."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if container is not None and container.proc.poll() is not None:
            raise AssertionError(
                f"{container.image} exited {container.proc.returncode} before {url}{path} answered:\n{container.output()[-6000:]}"
            )
        try:
            response = httpx.get(url + path, timeout=2)
            if response.status_code == 200:
                return response
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    output = f":\n{container.output()[-6000:]}" if container is not None else ""
    raise AssertionError(f"{url}{path} did not answer 200 in {timeout}s (last: {last!r}){output}")
