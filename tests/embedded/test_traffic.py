"""Traffic splitting and tags against a real platform: calls land by weight, a revision
deployed at 0% serves only through its tag, and bad rules change nothing."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.helpers import wait_for


def revisions_of(platform, http, name: str) -> dict[str, dict]:
    return {r["id"]: r for r in http.get(f"/v1/functions/{name}/revisions").json()}


def served_by(http, path: str, calls: int, **headers: str) -> Counter:
    out: Counter = Counter()
    for _ in range(calls):
        response = http.post(path, json={}, headers=headers)
        assert response.status_code == 200, response.text
        out[response.headers["x-lepton-revision"]] += 1
    return out


def test_a_90_10_split_lands_within_bounds_and_each_revision_scales_on_its_own(platform):
    platform.deploy(platform.source("app.py", 1), "greet")
    platform.deploy(platform.source("app.py", 2), "greet")
    with platform.http() as http:
        moved = http.put("/v1/functions/greet/traffic", json={"split": {"greet-00001": 90, "greet-00002": 10}})
        assert moved.status_code == 200, moved.text
        assert moved.json()["split"] == {"greet-00001": 90, "greet-00002": 10}
        revs = revisions_of(platform, http, "greet")
        assert (revs["greet-00001"]["percent"], revs["greet-00002"]["percent"]) == (90, 10)
        assert revs["greet-00001"]["routed"] and not revs["greet-00002"]["routed"]  # the main revision: the larger share

        # 1,000 calls, each to greet-00002 with p = 0.1: a binomial with mean 100 and standard
        # deviation 9.5. The bound is 5 standard deviations either side (53..147), which a
        # correct 90/10 pick leaves with a probability under 1e-6; a 50/50 or 100/0 pick fails it.
        counts = served_by(http, "/fn/greet", 1000)
        assert set(counts) == {"greet-00001", "greet-00002"}
        assert 53 <= counts["greet-00002"] <= 147, counts

        shares = {s["revision"]: s for s in http.get("/v1/functions/greet").json()["traffic"]}
        assert (shares["greet-00001"]["percent"], shares["greet-00002"]["percent"]) == (90, 10)

        # Each revision has its own replicas and scales to zero on its own (scale_down_after=1):
        # the canary drops to zero while calls keep the main revision busy.
        def canary_at_zero() -> bool:
            http.post("/fn/greet@" + "x", json={})  # an unknown tag costs nothing
            for _ in range(20):
                http.post("/fn/greet", json={}, headers={"lepton-tag": "none"})
            share = {s["revision"]: s for s in http.get("/v1/functions/greet").json()["traffic"]}["greet-00002"]
            return share["replicas"] == 0

        http.put("/v1/functions/greet/traffic", json={"split": {"greet-00001": 99, "greet-00002": 1}})
        wait_for(lambda: canary_at_zero() or None, 20)


def test_deploy_at_zero_percent_serves_only_through_its_tag(platform):
    platform.deploy(platform.source("app.py", 1), "greet")
    deployed = platform.cli("deploy", f"{platform.source('app.py', 2)}:greet", "--traffic", "0", "--tag", "canary")
    assert deployed.returncode == 0, deployed.stderr
    assert "greet-00002" in deployed.stdout and "0% of traffic" in deployed.stdout and "@canary" in deployed.stdout
    with platform.http() as http:
        assert served_by(http, "/fn/greet", 100) == {"greet-00001": 100}
        assert served_by(http, "/fn/greet@canary", 10) == {"greet-00002": 10}
        assert served_by(http, "/fn/greet", 10, **{"Lepton-Tag": "canary"}) == {"greet-00002": 10}
        missing = http.post("/fn/greet@beta", json={})
        assert missing.status_code == 404 and "has no tag 'beta'" in missing.json()["detail"]

        listed = platform.cli("revisions", "greet")
        line = next(line for line in listed.stdout.splitlines() if line.strip().startswith("greet-00002"))
        assert "canary" in line and "%" not in line
        # Promote the canary by half, then roll back: 100% on one revision, the tag stays.
        shown = platform.cli("traffic", "greet", "greet-00001=50", "greet-00002=50")
        assert shown.returncode == 0 and "greet-00002  50%" in shown.stdout, shown.stderr
        assert served_by(http, "/fn/greet", 200).keys() == {"greet-00001", "greet-00002"}
        assert http.post("/v1/functions/greet/rollback", json={"revision": "greet-00001"}).status_code == 200
        assert served_by(http, "/fn/greet", 50) == {"greet-00001": 50}
        assert http.get("/v1/functions/greet/traffic").json() == {
            "function": "greet",
            "split": {"greet-00001": 100},
            "tags": {"canary": "greet-00002"},
        }
        assert served_by(http, "/fn/greet@canary", 5) == {"greet-00002": 5}
        untagged = platform.cli("traffic", "greet", "--untag", "canary")
        assert untagged.returncode == 0, untagged.stderr
        assert http.post("/fn/greet@canary", json={}).status_code == 404


def test_bad_rules_are_refused_and_routing_stays(platform):
    platform.deploy(platform.source("app.py", 1), "greet")
    platform.deploy(platform.source("app.py", 2), "greet")
    with platform.http() as http:
        before = http.get("/v1/functions/greet/traffic").json()
        for body, words in [
            ({"split": {"greet-00001": 60, "greet-00002": 30}}, "add up to 90%"),
            ({"split": {"greet-00009": 100}}, "no ready revision 'greet-00009'"),
            ({"split": {"greet-00001": 100}, "tags": {"Bad_Tag": "greet-00001"}}, "lowercase letters"),
            ({"tags": {"gone": None}}, "has no tag 'gone'"),
            ({"split": {"greet-00001": 100}, "extra": 1}, "extra"),
        ]:
            refused = http.put("/v1/functions/greet/traffic", json=body)
            assert refused.status_code == 422 and words in refused.text, (body, refused.text)
        assert http.get("/v1/functions/greet/traffic").json() == before
        assert served_by(http, "/fn/greet", 20) == {"greet-00002": 20}
        assert http.put("/v1/functions/nope/traffic", json={"split": {"x": 100}}).status_code == 404

    for args, words in [
        (("greet", "greet-00001=50", "greet-00002=60"), "add up to 110%"),
        (("greet", "--tag", "c=greet-00001", "--tag", "c=greet-00002"), "given twice"),
        (("greet", "greet-00001"), "use REV=PCT"),
        (("greet", "greet-00001=half"), "whole number"),
    ]:
        result = platform.cli("traffic", *args)
        assert result.returncode != 0 and words in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    first = platform.cli("deploy", f"{platform.source('app.py', 1)}:work", "--traffic", "10")
    assert first.returncode != 0 and "not serving yet" in first.stderr and "Traceback" not in first.stderr


def test_a_first_deploy_can_be_tagged_and_a_dark_deploy_needs_a_tag(platform):
    tagged = platform.cli("deploy", f"{platform.source('app.py', 1)}:greet", "--tag", "v1")
    assert tagged.returncode == 0, tagged.stderr
    with platform.http() as http:
        assert served_by(http, "/fn/greet@v1", 3) == {"greet-00001": 3}
        assert served_by(http, "/fn/greet", 3) == {"greet-00001": 3}
    dark = platform.cli("deploy", f"{platform.source('app.py', 2)}:greet", "--traffic", "0")
    assert dark.returncode != 0 and "reachable only through a tag; add --tag" in dark.stderr
    # The same code as the main revision, tagged: nothing new starts, the tag is added.
    again = platform.cli("deploy", f"{platform.source('app.py', 1)}:greet", "--tag", "stable")
    assert again.returncode == 0, again.stderr
    with platform.http() as http:
        assert http.get("/v1/functions/greet/traffic").json()["tags"] == {"v1": "greet-00001", "stable": "greet-00001"}


def test_who_may_call_is_the_main_revisions_rule_whichever_revision_answers(platform):
    platform.deploy(platform.source("app.py", 1), "greet")  # private
    public = platform.source("app.py", 2)
    public.write_text(
        public.read_text().replace("@lepton.function(scale_down_after=1)", "@lepton.function(scale_down_after=1, public=True)")
    )
    platform.deploy(public, "greet")
    with platform.http() as http:
        assert http.post("/v1/functions/greet/rollback", json={"revision": "greet-00001"}).status_code == 200
        # greet-00002 is public, but greet-00001, the main revision (the larger share), is not.
        assert (
            http.put(
                "/v1/functions/greet/traffic", json={"split": {"greet-00001": 60, "greet-00002": 40}, "tags": {"open": "greet-00002"}}
            ).status_code
            == 200
        )
    anonymous = [httpx.post(f"{platform.url}/fn/greet", json={}).status_code for _ in range(40)]
    assert set(anonymous) == {401}, anonymous
    assert httpx.post(f"{platform.url}/fn/greet@open", json={}).status_code == 401
