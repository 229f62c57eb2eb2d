"""Access keys and calls=[...] on the Knative backend: callers and pods still reach functions
through the platform's `/fn/NAME`, so `router.admit` decides there exactly as on one machine."""

from __future__ import annotations

import httpx

from tests.helpers import FUNCTIONS
from tests.knative.test_platform_backend import knative  # noqa: F401 - the fixture

CALLS = FUNCTIONS / "platform" / "calls.py"


def test_keys_and_calls_are_enforced_for_knative_functions(knative):  # noqa: F811
    for name in ("callee", "caller", "third"):
        knative.address(name)
        knative.platform.deploy(CALLS, name)
    knative.pod("callee")
    knative.pod("caller")
    with knative.platform.http() as admin:
        # The caller's pod calls `callee.remote()` with the scoped token from its Secret.
        assert admin.post("/fn/caller", json={}).json() == {"status": 200, "body": {"callee": 7}}
        third = admin.post("/fn/caller", json={"target": "third"}).json()
        assert third["status"] == 403 and "it is not in the caller's calls=['callee']" in third["detail"]
        key = admin.post("/v1/keys", json={"functions": ["callee"], "expires": "1h"}).json()
    with httpx.Client(base_url=knative.platform.url, headers={"Authorization": f"Bearer {key['key']}"}, timeout=30) as http:
        assert http.post("/fn/callee", json={"x": 2}).json() == {"callee": 2}
        refused = http.post("/fn/third", json={})
        assert refused.status_code == 403 and "may not invoke function 'third'" in refused.json()["detail"]
        assert http.get("/v1/functions").status_code == 403
    with knative.platform.http() as admin:
        assert admin.delete(f"/v1/keys/{key['id']}").status_code == 200
    refused = httpx.post(f"{knative.platform.url}/fn/callee", json={}, headers={"Authorization": f"Bearer {key['key']}"})
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
