"""Secrets on a real `lepton up`, driven through the CLI as a user would: a function sees only
the secrets it declares; a changed secret replaces its replicas while in-flight requests finish
on the old ones; a deploy that declares a missing secret changes nothing; and the value is
never in a file under $LEPTON_HOME, a log, a process's argv or an API response."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import lepton
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import ROOT, wait_for

NAME = "SECRETIVE_TOKEN"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """One platform for this module's tests; each leaves no secret behind."""
    folder = tmp_path_factory.mktemp("secrets")
    running = PlatformProcess(start_platform(folder / "home", folder / "platform.log"), folder / "home", folder / "src")
    yield running
    running.process.stop(signal.SIGTERM)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def cli(platform, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """`lepton ARGS` with the platform's URL and token in the environment, and nothing on stdin
    unless given (so `secret set` never waits on a prompt)."""
    return subprocess.run(
        [sys.executable, "-m", "lepton.cli", *args],
        input=stdin or "",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "LEPTON_URL": platform.url, "LEPTON_TOKEN": platform.token, **env},
    )


def leaks(value: str, platform: PlatformProcess) -> list[str]:
    """Every place the value shows up: files under $LEPTON_HOME (state.db and its WAL, logs,
    artifacts, unpacked code), the platform's log, and any process's command line."""
    needle = value.encode()
    log = platform.home.parent / "platform.log"
    found = [str(p) for p in [*platform.home.rglob("*"), log] if p.is_file() and needle in p.read_bytes()]
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes():
                found.append(str(cmdline))
        except OSError:  # ended meanwhile, or not ours to read
            pass
    return found


@pytest.mark.slow
def test_secrets_reach_only_their_functions_change_in_place_and_never_leak(platform, tmp_path):
    old, new = "s3cr3t-" + uuid.uuid4().hex, "s3cr3t-" + uuid.uuid4().hex
    answers: list[str] = []  # every API response body, checked for the values at the end

    def keep(response: httpx.Response) -> None:
        response.read()
        answers.append(response.text)

    set_first = cli(platform, "secret", "set", NAME, stdin=old + "\n")  # as `echo VALUE | lepton secret set`
    assert set_first.returncode == 0 and set_first.stdout.strip() == f"secret {NAME} set", set_first.stderr
    same = cli(platform, "secret", "set", NAME, "--from-env", "THE_VALUE", THE_VALUE=old)
    assert same.stdout.strip() == f"secret {NAME} unchanged", same.stderr

    deployed = platform.deploy(platform.source("secretive.py"))
    assert {d["function"] for d in deployed} == {"peek", "nosy"}
    with platform.http(event_hooks={"response": [keep]}) as http:
        first = http.post("/fn/peek", json={}).json()
        assert first["sha256"] == digest(old), "the declaring function reads the value as an environment variable"
        nosy = http.post("/fn/nosy").json()
        assert nosy["declared"] is False and digest(old) not in nosy["digests"], "a function that does not declare it never sees it"

        listed = cli(platform, "secret", "ls")
        assert listed.returncode == 0 and NAME in listed.stdout and "peek" in listed.stdout and "nosy" not in listed.stdout
        (row,) = [s for s in http.get("/v1/secrets").json() if s["name"] == NAME]
        assert row["used_by"] == ["peek"] and row["version"] == 1 and "value" not in row
        assert http.get(f"/v1/secrets/{NAME}").json() == row

        # A new value: the replica serving a slow request finishes it; the next call gets a new replica.
        slow: dict = {}
        caller = threading.Thread(target=lambda: slow.update(response=http.post("/fn/peek", json={"wait": 1.5}, timeout=30)))
        caller.start()
        wait_for(lambda: platform.info("peek")["in_flight"] >= 1, message="the slow call is in flight")
        (tmp_path / "value.txt").write_text(new)
        changed = cli(platform, "secret", "set", NAME, "--from-file", str(tmp_path / "value.txt"))
        assert changed.stdout.strip() == f"secret {NAME} set; replaced the replicas of peek", changed.stderr
        after = http.post("/fn/peek", json={}).json()
        assert after["sha256"] == digest(new) and after["pid"] != first["pid"]
        caller.join(30)
        assert slow["response"].status_code == 200, slow["response"].text
        assert slow["response"].json() == {**first, "sha256": digest(old)}, "the in-flight call finished on the old replica"

        # A deploy that declares a secret nobody set fails naming it, and nothing changes.
        lacking = tmp_path / "lacking" / "secretive.py"
        lacking.parent.mkdir()
        lacking.write_text(
            platform.source("secretive.py", 2).read_text().replace(f'secrets=["{NAME}"]', f'secrets=["{NAME}", "SECRETIVE_MISSING"]')
        )
        with pytest.raises(lepton.InvocationError) as refused:
            platform.deploy(lacking, "peek")
        assert refused.value.status_code == 422 and "SECRETIVE_MISSING" in str(refused.value) and "not set" in str(refused.value)
        assert [r["id"] for r in http.get("/v1/functions/peek/revisions").json()] == ["peek-00001"]
        assert http.post("/fn/peek", json={}).json()["sha256"] == digest(new), "the previous revision keeps serving"

        # Removing it is refused while peek declares it, unless forced.
        kept = cli(platform, "secret", "rm", NAME)
        assert kept.returncode == 1 and len(kept.stderr.strip().splitlines()) == 1
        assert kept.stderr.startswith("error: HTTP 409") and "used by peek" in kept.stderr
        assert http.get(f"/v1/secrets/{NAME}").status_code == 200
        gone = cli(platform, "secret", "rm", NAME, "--force")
        assert gone.returncode == 0 and gone.stdout.strip() == f"removed secret {NAME} (still declared by peek)"
        assert NAME not in [s["name"] for s in http.get("/v1/secrets").json()]
        assert http.post("/fn/peek", json={}).json()["sha256"] == digest(new), "running replicas keep what they started with"

    cli_output = "".join(r.stdout + r.stderr for r in (set_first, same, listed, changed, kept, gone))
    for value in (old, new):
        assert value not in cli_output and not any(value in a for a in answers)
        assert leaks(value, platform) == []


BAD = [
    ("PUT", "/v1/secrets/hf_token", {"json": {"value": "x"}}, 400, "'hf_token' is not a valid secret name"),
    ("PUT", "/v1/secrets/LEPTON_KEY", {"json": {"value": "x"}}, 400, "LEPTON_ is reserved"),
    ("PUT", "/v1/secrets/TOO_LONG", {"json": {"value": "x" * 65537}}, 413, "65537 bytes, over the limit of 65536 bytes"),
    ("PUT", "/v1/secrets/WIDE", {"json": {"value": "é" * 32769}}, 413, "over the limit of 65536 bytes"),
    ("PUT", "/v1/secrets/HUGE", {"content": b'{"value": "' + b"x" * 500_000 + b'"}'}, 413, "over the limit"),
    ("PUT", "/v1/secrets/NUMBER", {"json": {"value": 12345}}, 400, '"value" must be a string, not int'),
    ("PUT", "/v1/secrets/NUL", {"json": {"value": "a\x00b"}}, 400, "contains a NUL character"),
    ("PUT", "/v1/secrets/EXTRA", {"json": {"value": "a", "other": "b"}}, 400, 'exactly one field, "value"'),
    ("PUT", "/v1/secrets/BROKEN", {"content": b'{"value": '}, 400, "must be a JSON object"),
    ("PUT", "/v1/secrets/SURROGATE", {"content": b'{"value": "\\ud800"}'}, 400, "not valid Unicode"),
    ("GET", "/v1/secrets/NOT_SET", {}, 404, "secret 'NOT_SET' is not set"),
    ("GET", "/v1/secrets/not-valid", {}, 400, "not a valid secret name"),
    ("DELETE", "/v1/secrets/NOT_SET", {}, 404, "secret 'NOT_SET' is not set"),
    ("DELETE", "/v1/secrets/NOT_SET?force=perhaps", {}, 422, "force"),
]


def test_bad_input_is_a_clear_4xx_and_changes_nothing(platform):
    with platform.http() as http:
        for method, path, kwargs, status, message in BAD:
            response = http.request(method, path, **kwargs)
            assert response.status_code == status and message in str(response.json()["detail"]), (method, path, response.text)
            assert "12345" not in response.text and "xxxxxxxx" not in response.text and "a\\u0000b" not in response.text
        assert not {s["name"] for s in http.get("/v1/secrets").json()} & {path.rsplit("/", 1)[-1] for _, path, *_ in BAD}
        scoped = {"Authorization": "Bearer rev.nothing.x"}
        assert http.put("/v1/secrets/A", json={"value": "x"}, headers=scoped).status_code == 403
        assert http.put("/v1/secrets/A", json={"value": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 403
        # At the limit is fine.
        assert http.put("/v1/secrets/AT_LIMIT", json={"value": "x" * 65536}).json() == {"name": "AT_LIMIT", "changed": True, "replaced": []}
        assert http.delete("/v1/secrets/AT_LIMIT").json() == {"name": "AT_LIMIT", "removed": True, "used_by": []}
    invalid = cli(platform, "secret", "set", "hf-token", "--from-env", "HOME")
    assert invalid.returncode == 2 and invalid.stderr.startswith("error: 'hf-token' is not a valid secret name")
    assert len(invalid.stderr.strip().splitlines()) == 1
    both = cli(platform, "secret", "set", "A_B", "value", "--from-env", "HOME")
    assert both.returncode == 2 and both.stderr.strip() == "error: secret A_B: give the value one way, not with VALUE and --from-env"
