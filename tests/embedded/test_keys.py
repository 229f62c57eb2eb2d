"""Access keys and calls between functions: who may invoke a private function, and what a key
may do under /v1. Unit tests of the keys module first, then the platform over real HTTP."""

from __future__ import annotations

import json
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lepton_platform.keys import KEY, MAX_EXPIRY, Keys, hash_key, parse_expiry
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS
from tests.test_cli_run import lepton_cli

DIGEST = "sha256:" + "ab" * 32
PATH_VALUES = {"name": "callee", "digest": DIGEST, "letter_id": "1", "key_id": "00000000", "bucket": "inbox"}

# -- the keys module, in process ------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30d", 30 * 86_400),
        ("12h", 12 * 3_600),
        ("45m", 45 * 60),
        ("90s", 90),
        ("7", 7 * 86_400),
        (" 2D ", 2 * 86_400),
        ("3650d", MAX_EXPIRY),
        ("87600h", MAX_EXPIRY),
    ],
)
def test_expiry_syntax(text, seconds):
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize(
    "text, problem",
    [
        ("soon", "is not a duration"),
        ("", "is not a duration"),
        ("1.5d", "is not a duration"),
        ("30 days", "is not a duration"),
        ("1w", "is not a duration"),
        ("P30D", "is not a duration"),
        ("\u0663d", "is not a duration"),
        ("0d", "must be positive"),
        ("0", "must be positive"),
        ("-5d", "must be positive"),
        ("3651d", "over the limit of 10 years"),
        ("87601h", "over the limit of 10 years"),
        ("9" * 5000, "over the limit of 10 years"),
    ],
)
def test_bad_expiry_says_why(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse_expiry(text)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[tuple[Keys, Clock]]:
    clock = Clock()
    opened = Keys(tmp_path / "state.db", clock=clock)
    yield opened, clock
    opened.close()


def test_key_format_and_what_is_stored(keys):
    store, _ = keys
    key, plain = store.create(["b", "a"], None)
    match = KEY.match(plain)
    assert match and match["id"] == key.id and len(match["secret"]) == 43  # 32 random bytes, base64url
    assert key.hash == hash_key(plain) != plain and plain not in json.dumps(key.to_json(0))
    assert key.to_json(0)["functions"] == ["a", "b"] and "hash" not in key.to_json(0)
    assert store.find(plain) is key and store.find(plain[:-1] + ("A" if plain[-1] != "A" else "B")) is None
    assert len({store.create()[0].id for _ in range(50)}) == 50


def test_key_checks(keys):
    store, clock = keys
    one, one_plain = store.create(["greet"], 3_600)
    every, every_plain = store.create([], None)
    assert store.refusal(one_plain, "greet") is None
    status, why = store.refusal(one_plain, "other")
    assert status == 403 and "may not invoke function 'other'" in why and "greet" in why
    assert store.refusal(every_plain, "other") is None
    assert store.refusal("lk_00000000_" + "x" * 43, "greet")[0] == 403

    clock.now += 3_599
    assert store.refusal(one_plain, "greet") is None and one.status(clock.now) == "active"
    clock.now += 1
    status, why = store.refusal(one_plain, "greet")
    assert status == 401 and "expired" in why and one.status(clock.now) == "expired"

    assert store.revoke(every.id) is every and every.status(clock.now) == "revoked"
    status, why = store.refusal(every_plain, "greet")
    assert status == 401 and f"key {every.id} was revoked" in why
    assert store.revoke("nope") is None


def test_keys_survive_a_restart_and_last_use_is_written_at_most_once_a_minute(tmp_path):
    clock = Clock()
    store = Keys(tmp_path / "state.db", clock=clock)
    key, plain = store.create(["greet"], 86_400)
    revoked, revoked_plain = store.create([], None)
    store.revoke(revoked.id)
    writes = []
    store._write_last_used = lambda key_id, now: writes.append((key_id, now))  # type: ignore[method-assign]
    for _ in range(100):
        assert store.refusal(plain, "greet") is None
    clock.now += 59
    assert store.refusal(plain, "greet") is None
    clock.now += 1
    assert store.refusal(plain, "greet") is None
    store.close()  # waits for the writer thread
    assert writes == [(key.id, 1_000_000.0), (key.id, 1_000_060.0)]

    again = Keys(tmp_path / "state.db", clock=clock)
    try:
        assert again.refusal(plain, "greet") is None and again.get(key.id).expires_at == key.expires_at
        assert again.refusal(revoked_plain, "greet")[0] == 401
    finally:
        again.close()
    third = Keys(tmp_path / "state.db", clock=clock)
    assert third.get(key.id).last_used_at == clock.now  # written by the real writer this time
    third.close()


# -- the platform ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    folder = tmp_path_factory.mktemp("keys")
    running = PlatformProcess(start_platform(folder / "home", folder / "platform.log"), folder / "home", folder / "src")
    running.deploy(FUNCTIONS / "platform" / "calls.py")
    yield running
    running.process.stop(signal.SIGTERM)


def new_key(target: PlatformProcess, functions: list[str] | None = None, expires: str | None = None) -> dict:
    with target.http() as http:
        response = http.post("/v1/keys", json={"functions": functions or [], "expires": expires})
    assert response.status_code == 201, response.text
    return response.json()


def as_key(target: PlatformProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=target.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_a_key_invokes_its_function_and_nothing_else(target):
    created = new_key(target, ["callee"], "30d")
    assert set(created) >= {"id", "key", "functions", "expires_at"} and created["functions"] == ["callee"]
    assert created["expires_at"] == pytest.approx(time.time() + 30 * 86_400, abs=60)
    with as_key(target, created["key"]) as http:
        assert http.post("/fn/callee", json={"x": 3}).json() == {"callee": 3}
        refused = http.post("/fn/third", json={})
        assert refused.status_code == 403
        assert refused.json()["detail"] == f"key {created['id']} may not invoke function 'third'; it may invoke callee"
        assert http.get("/v1/functions").status_code == 403
        bucket = http.get("/v1/buckets")
        assert bucket.status_code == 403 and "a key may not use GET /v1/buckets" in bucket.json()["detail"]
        assert http.get("/v1/keys").status_code == 403
        event = {"specversion": "1.0", "id": "from-a-key", "source": "/test", "type": "com.example.key"}
        sent = http.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/cloudevents+json"})
        assert sent.status_code == 202 and sent.json()["accepted"] == 1


def test_a_key_may_use_no_other_route_under_v1(target):
    """Every /v1 route the API documents, with a valid key: 403, except the event ingress
    and the jobs of the functions it may invoke."""
    allowed = {
        ("post", "/v1/events"),
        ("get", "/v1/jobs"),
        ("get", "/v1/jobs/{job_id}"),
        ("get", "/v1/jobs/{job_id}/result"),
        ("delete", "/v1/jobs/{job_id}"),
    }
    key = new_key(target)["key"]
    with target.http() as admin:
        paths = admin.get("/openapi.json").json()["paths"]
    checked = 0
    with as_key(target, key) as http:
        for path, operations in paths.items():
            url = re.sub(r"\{(\w+)[^}]*\}", lambda m: PATH_VALUES.get(m[1], "x"), path)
            for method in operations:
                if (method, path) in allowed or not path.startswith("/v1/"):
                    continue
                response = http.request(method.upper(), url, content=b"{}", headers={"content-type": "application/json"})
                assert response.status_code == 403, (method, url, response.status_code, response.text)
                checked += 1
    assert checked >= 20


def test_a_key_sees_the_jobs_of_its_functions_only(target):
    created = new_key(target, ["callee"])
    with target.http() as admin:
        theirs = admin.post("/fn/third", json={}, headers={"Prefer": "respond-async"}).json()["id"]
    with as_key(target, created["key"]) as http:
        mine = http.post("/fn/callee", json={"x": 3}, headers={"Prefer": "respond-async"})
        assert mine.status_code == 202
        assert http.get(mine.headers["location"], params={"wait": 30}).json()["result"] == {"callee": 3}
        refused = http.get(f"/v1/jobs/{theirs}")
        assert refused.status_code == 403 and "may not invoke function 'third'" in refused.json()["detail"]
        assert http.delete(f"/v1/jobs/{theirs}").status_code == 403
        assert {j["function"] for j in http.get("/v1/jobs").json()["jobs"]} == {"callee"}
        assert http.post("/fn/third", json={}, headers={"Prefer": "respond-async"}).status_code == 403


def test_a_key_without_functions_invokes_every_private_function(target):
    key = new_key(target)["key"]
    with as_key(target, key) as http:
        for function in ("callee", "third", "stranger"):
            assert http.post(f"/fn/{function}", json={}).status_code == 200, function


def test_a_revoked_key_stops_working_at_once(target):
    created = new_key(target, ["callee"])
    with as_key(target, created["key"]) as http:
        assert http.post("/fn/callee", json={}).status_code == 200
        with target.http() as admin:
            revoked = admin.delete(f"/v1/keys/{created['id']}")
            assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
            assert admin.delete(f"/v1/keys/{created['id']}").status_code == 200
            assert admin.delete("/v1/keys/00000000").status_code == 404
        refused = http.post("/fn/callee", json={})
        assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
        event = {"specversion": "1.0", "id": "revoked", "source": "/test", "type": "com.example.key"}
        sent = http.post("/v1/events", content=json.dumps(event), headers={"content-type": "application/cloudevents+json"})
        assert sent.status_code == 401 and "revoked" in sent.json()["detail"]
        # HTTP/1.0 takes the ASGI router rather than the socket fast path: the same decision.
        with socket.create_connection(("127.0.0.1", int(target.url.rsplit(":", 1)[1])), timeout=30) as raw:
            raw.sendall(f"POST /fn/callee HTTP/1.0\r\nAuthorization: Bearer {created['key']}\r\ncontent-length: 2\r\n\r\n{{}}".encode())
            answer = b""
            while chunk := raw.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 401") and b"revoked" in answer


def test_keys_are_stored_hashed(target):
    created = new_key(target, ["callee"])
    with target.http() as admin:
        listed = admin.get("/v1/keys")
    assert created["id"] in listed.text and created["key"] not in listed.text and hash_key(created["key"]) not in listed.text
    stored = b"".join(path.read_bytes() for path in target.home.glob("state.db*"))
    assert hash_key(created["key"]).encode() in stored  # the table is in this file
    assert created["key"].encode() not in stored and created["key"].split("_", 2)[2].encode() not in stored


def test_keys_name_deployed_functions_and_valid_expiries(target):
    with target.http() as admin:
        for body, problem in [
            ({"functions": ["callee", "calee", "nope"]}, "no function 'calee', 'nope' is deployed"),
            ({"functions": ["Bad_Name"]}, "not a valid function name"),
            ({"expires": "soon"}, "is not a duration"),
            ({"expires": "0d"}, "must be positive"),
            ({"expires": "-1"}, "must be positive"),
            ({"expires": "3651d"}, "over the limit of 10 years"),
        ]:
            response = admin.post("/v1/keys", json=body)
            assert response.status_code == 400 and problem in response.json()["detail"], (body, response.text)
        assert admin.post("/v1/keys", json={"function": ["callee"]}).status_code == 422  # misspelt: no key for everything
        before = admin.get("/v1/keys").json()
    scoped = _scoped_token(target)
    assert httpx.post(f"{target.url}/v1/keys", json={}, headers={"Authorization": f"Bearer {scoped}"}).status_code == 403
    assert httpx.get(f"{target.url}/v1/keys").status_code == 401
    with target.http() as admin:
        assert admin.get("/v1/keys").json() == before  # nothing was created


def _scoped_token(target: PlatformProcess) -> str:
    from lepton_platform.catalog import Catalog
    from lepton_platform.credentials import Credentials

    store = Catalog(target.home / "state.db")
    try:
        return Credentials(target.token).scoped_token(store.revision("caller-00001"))
    finally:
        store.close()


def test_calls_between_functions(target):
    with target.http() as admin:
        # `caller` declares calls=["callee"]: `callee.remote()` inside it uses its scoped token.
        assert admin.post("/fn/caller", json={}).json() == {"status": 200, "body": {"callee": 7}}
        # ... and nothing else: `third` is not in its calls=[...].
        third = admin.post("/fn/caller", json={"target": "third"}).json()
        assert third["status"] == 403
        assert third["detail"] == (
            "function caller (caller-00001) may not invoke function 'third': it is not in the caller's calls=['callee']"
        )
        # `stranger` declares no calls=.
        stranger = admin.post("/fn/stranger", json={}).json()
        assert stranger["status"] == 403 and "function 'callee'" in stranger["detail"] and "calls=[]" in stranger["detail"]
    # The caller's scoped token from outside: the same rules, and no /v1 beyond its buckets.
    with as_key(target, _scoped_token(target)) as http:
        assert http.post("/fn/callee", json={"x": 1}).json() == {"callee": 1}
        assert http.post("/fn/third", json={}).status_code == 403
        assert http.get("/v1/functions").status_code == 403
    forged = "rev.caller-00001." + "0" * 64
    refused = httpx.post(f"{target.url}/fn/callee", json={}, headers={"Authorization": f"Bearer {forged}"})
    assert refused.status_code == 403 and "invalid scoped token" in refused.json()["detail"]


def test_keys_from_the_cli(target, monkeypatch):
    monkeypatch.setenv("LEPTON_HOME", str(target.home))
    monkeypatch.setenv("LEPTON_URL", target.url)

    created = lepton_cli("keys", "create", "--function", "callee", "--expires", "30d")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert KEY.match(key) and "not shown again" in created.stderr and len(created.stderr.strip().splitlines()) == 1
    key_id = KEY.match(key)["id"]
    assert httpx.post(f"{target.url}/fn/callee", json={}, headers={"Authorization": f"Bearer {key}"}).status_code == 200

    short = lepton_cli("keys", "create", "--expires", "1s", "--output", "json")
    short_id = json.loads(short.stdout)["id"]

    for args, problem in [
        (("--expires", "soon"), "is not a duration"),
        (("--expires", "0d"), "must be positive"),
        (("--function", "nope"), "'nope'"),
    ]:
        bad = lepton_cli("keys", "create", *args)
        assert bad.returncode != 0 and problem in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, (args, bad.stderr)
        assert "Traceback" not in bad.stderr and not bad.stdout

    deadline = time.monotonic() + 10
    with target.http() as admin:
        while time.monotonic() < deadline:  # the 1 s key expires
            if {k["id"]: k["status"] for k in admin.get("/v1/keys").json()}[short_id] == "expired":
                break
            time.sleep(0.1)
    listed = lepton_cli("keys", "ls").stdout.splitlines()
    row = next(line for line in listed if key_id in line)
    assert "callee" in row and "active" in row
    short_row = next(line for line in listed if short_id in line)
    assert "expired" in short_row and "all" in short_row
    expired = httpx.post(f"{target.url}/fn/callee", json={}, headers={"Authorization": f"Bearer {json.loads(short.stdout)['key']}"})
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    assert lepton_cli("keys", "revoke", key_id).stdout.strip() == f"revoked key {key_id}"
    row = next(line for line in lepton_cli("keys", "ls").stdout.splitlines() if key_id in line)
    assert "revoked" in row
    missing = lepton_cli("keys", "revoke", "nope")
    assert missing.returncode != 0 and "key 'nope' not found" in missing.stderr
