"""Deploy, invoke, redeploy, rollback, remove; auth; broken deploys keep the old revision."""

from __future__ import annotations

import httpx
import pytest

import lepton
from lepton.loader import load_functions


def test_deploy_invoke_redeploy_rollback_rm(platform):
    v1 = platform.source("app.py", 1)
    first = platform.deploy(v1, "greet")[0]
    assert (first["revision"], first["changed"]) == ("greet-00001", True)
    with platform.http() as http:
        response = http.post("/fn/greet", json={"name": "Ada"})
        assert response.json()["hello"] == "Ada" and response.json()["version"] == 1
        assert response.headers["x-lepton-revision"] == "greet-00001"

        again = platform.deploy(platform.source("app.py", 1), "greet")[0]
        assert (again["revision"], again["changed"]) == ("greet-00001", False)

        second = platform.deploy(platform.source("app.py", 2), "greet")[0]
        assert second["revision"] == "greet-00002"
        response = http.post("/fn/greet", json={})
        assert response.json()["version"] == 2 and response.headers["x-lepton-revision"] == "greet-00002"

        revisions = http.get("/v1/functions/greet/revisions").json()
        assert [(r["id"], r["status"], r["routed"]) for r in revisions] == [("greet-00001", "ready", False), ("greet-00002", "ready", True)]

        assert http.post("/v1/functions/greet/rollback", json={}).json()["revision"] == "greet-00001"
        response = http.post("/fn/greet", json={})
        assert response.json()["version"] == 1 and response.headers["x-lepton-revision"] == "greet-00001"

        assert http.delete("/v1/functions/greet").json()["removed"]
        gone = http.post("/fn/greet", json={})
        assert gone.status_code == 404 and "not found" in gone.json()["detail"]
        assert http.get("/v1/functions").json() == []


def test_remote_calls_the_deployed_function(platform):
    source = platform.source("app.py", 1)
    greet = load_functions(f"{source}:greet")["greet"]
    platform.deploy(source, "greet")
    with platform.client() as client:
        assert greet.remote(client=client, name="remote")["hello"] == "remote"
    assert greet(name="local")["hello"] == "local"


def test_auth(platform):
    platform.deploy(platform.source("app.py"))
    assert httpx.get(platform.url + "/v1/functions").status_code == 401
    assert httpx.get(platform.url + "/v1/functions", headers={"Authorization": "Bearer nope"}).status_code == 403
    private = httpx.post(platform.url + "/fn/greet", json={})
    assert private.status_code == 401 and "greet" in private.json()["detail"]
    wrong = httpx.post(platform.url + "/fn/greet", json={}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    public = httpx.post(platform.url + "/fn/work", json={"seconds": 0})
    assert public.status_code == 200
    token_file = platform.home / "token"
    assert token_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "broken, expected",
    [
        ("broken_setup.py", "model weights missing"),
        ("platform_only_import.py", "No module named 'module_missing_on_the_platform'"),
    ],
)
def test_a_broken_deploy_leaves_the_old_revision_serving(platform, broken, expected):
    platform.deploy(platform.source("app.py"), "greet")
    source = platform.source(broken, 2)
    with platform.client() as api:
        artifact = lepton.package(source, load_functions(str(source)))
        api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
        with pytest.raises(lepton.InvocationError) as info:
            api.request("POST", "/v1/functions", json={"artifact": artifact.digest, "function": "greet"})
    assert info.value.status_code == 422
    assert expected in str(info.value) and "previous revision keeps serving" in str(info.value)
    with platform.http() as http:
        response = http.post("/fn/greet", json={"name": "still"})
        assert response.status_code == 200 and response.headers["x-lepton-revision"] == "greet-00001"
        statuses = [r["status"] for r in http.get("/v1/functions/greet/revisions").json()]
        assert statuses == ["ready", "failed"]


def test_a_syntax_error_never_leaves_the_laptop(platform, tmp_path):
    from tests.test_cli_run import lepton_cli

    platform.deploy(platform.source("app.py"), "greet")
    bad = tmp_path / "bad.py"
    bad.write_text("import lepton\n\n@lepton.function(name='greet')\ndef greet(:\n    pass\n")
    result = lepton_cli("deploy", str(bad), "--platform", platform.url, "--token", platform.token)
    assert result.returncode == 2 and "bad.py:4: syntax error" in result.stderr
    with platform.http() as http:
        assert http.post("/fn/greet", json={}).headers["x-lepton-revision"] == "greet-00001"


def test_requirements_are_checked_at_deploy(platform):
    source = platform.source("needs_package.py")
    with platform.client() as api:
        artifact = lepton.package(source)
        api.request("PUT", f"/v1/artifacts/{artifact.digest}", content=artifact.data)
        for name, expected in [
            ("needy", "'definitely-not-installed-pkg>=1' is not installed"),
            ("old-pydantic", "'pydantic<2' does not match installed pydantic 2."),
        ]:
            with pytest.raises(lepton.InvocationError) as info:
                api.request("POST", "/v1/functions", json={"artifact": artifact.digest, "function": name})
            assert info.value.status_code == 422 and expected in str(info.value)


def test_uploads_are_verified(platform):
    with platform.http() as http:
        bad = http.put("/v1/artifacts/sha256:" + "0" * 64, content=b"not what the digest says")
        assert bad.status_code == 400 and "does not match its digest" in bad.json()["detail"]
        unknown = http.post("/v1/functions", json={"artifact": "sha256:" + "1" * 64, "function": "x"})
        assert unknown.status_code == 400 and "upload it first" in unknown.json()["detail"]
        malformed = http.post("/v1/functions", json={"artifact": "md5:abc", "function": "x"})
        assert malformed.status_code == 422
