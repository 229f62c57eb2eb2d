"""Many functions on one platform: deploys start a bounded number of replicas at once and
leave unused functions at zero, with nothing running for them; requests that wait for a
replica are served in arrival order up to a queue limit; lists come a page at a time; the
platform refuses more functions than it is configured to hold."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lepton.errors import InvocationError
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS, log_records, wait_for

MANY = FUNCTIONS / "scale" / "many.py"
SLOW = [f"s{n}" for n in range(1, 7)]


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """Every function of MANY deployed with `lepton deploy`, which deploys several at once."""
    tmp_path = tmp_path_factory.mktemp("scale")
    home = tmp_path / "home"
    running = PlatformProcess(start_platform(home, tmp_path / "platform.log", env={"LEPTON_MAX_STARTING": "2"}), home, tmp_path)
    try:
        deployed = running.cli("deploy", str(MANY))
        assert deployed.returncode == 0, deployed.stderr
        yield running
    finally:
        running.process.stop()


def health(platform: PlatformProcess) -> dict:
    return httpx.get(f"{platform.url}/healthz").json()


def deploy_setups(platform: PlatformProcess) -> list[tuple[float, int]]:
    """(time, +1 at a setup's start or -1 at its end) for the deploy's replicas: the first
    twelve marks, before any test called a function."""
    marks = [line.split() for line in log_records(platform.home, "SETUP")]
    return sorted((float(t), 1 if what == "start" else -1) for what, _, t in marks)[: 2 * len(SLOW)]


def test_a_deploy_starts_at_most_max_starting_replicas_at_once_and_leaves_them_at_zero(platform):
    running = peak = 0
    for _, step in deploy_setups(platform):
        running += step
        peak = max(peak, running)
    assert running == 0 and len(deploy_setups(platform)) == 2 * len(SLOW)
    assert peak == 2, "two at a time: bounded, and not one by one"
    state = health(platform)
    assert state["replicas"]["starting_peak"] <= 2 and state["replicas"]["max_starting"] == 2
    with platform.client() as api:
        for name in SLOW:
            wait_for(
                lambda name=name: api.request("GET", f"/v1/functions/{name}").json()["replicas"] == 0,
                timeout=10,
                message=f"{name}'s proof replica stops: nobody has called it",
            )
            fn = api.request("GET", f"/v1/functions/{name}").json()
            assert fn["desired"] == 0 and fn["awake"] is False, "no reconcile loop runs for a function at zero"


def test_a_called_function_wakes_and_goes_back_to_sleep_at_zero(platform):
    with platform.client() as api:
        assert api.invoke("s3", x=1) == 2
        assert platform.info("s3")["awake"] is True
        wait_for(
            lambda: api.request("GET", "/v1/functions/s3").json()["replicas"] == 0,
            timeout=10,
            message="s3 scales to zero after scale_down_after=2",
        )
    wait_for(lambda: platform.info("s3")["awake"] is False, timeout=5, message="its loop ends once it is at zero")


def test_waiting_requests_are_served_in_arrival_order_and_a_full_queue_is_refused_at_once(platform):
    """`single` takes one request at a time and holds two waiting (max_queue=2)."""
    results: dict[int, httpx.Response] = {}

    def call(n: int, hold: float) -> None:
        with platform.http() as http:
            results[n] = http.post("/fn/single", json={"n": n, "hold": hold})

    def status() -> dict:
        return platform.info("single")

    threads = [threading.Thread(target=call, args=(100, 5.0))]
    threads[0].start()
    wait_for(lambda: status()["in_flight"] == 1 and status()["queued"] == 0, timeout=15, message="the first call runs")
    for n in (101, 102):
        threads.append(threading.Thread(target=call, args=(n, 0.0)))
        threads[-1].start()
        wait_for(lambda n=n: status()["queued"] == n - 100, timeout=5, message=f"call {n} waits")
    with platform.http() as http:
        refused = http.post("/fn/single", json={"n": 103})
    assert status()["in_flight"] == 3, "refused while the first call still runs, not after a timeout"
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert "max_queue=2" in refused.json()["detail"]
    for thread in threads:
        thread.join()
    assert [results[n].json() for n in (100, 101, 102)] == [100, 101, 102]
    order = [int(n) for n in log_records(platform.home, "ORDER") if n.startswith("10")]
    assert order == [100, 101, 102]


def test_lists_come_a_page_at_a_time(platform):
    names = sorted([*SLOW, "single"])
    with platform.http() as http:
        first = http.get("/v1/functions", params={"limit": 3})
        assert [fn["name"] for fn in first.json()] == names[:3]
        second = http.get(first.links["next"]["url"])
        assert [fn["name"] for fn in second.json()] == names[3:6]
        last = http.get(second.links["next"]["url"])
        assert [fn["name"] for fn in last.json()] == names[6:] and "next" not in last.links
        assert http.get("/v1/functions", params={"limit": 0}).status_code == 422
        assert http.get("/v1/functions", params={"limit": 1001}).status_code == 422
        triggers = http.get("/v1/triggers", params={"limit": 1})
        assert triggers.status_code == 200 and triggers.json() == [] and "next" not in triggers.links
    with platform.client() as api:
        assert [fn["name"] for fn in api.pages("/v1/functions", limit=2)] == names
        assert [r["number"] for r in api.pages("/v1/functions/s1/revisions", limit=1)] == [1]
    shown = platform.cli("ls").stdout
    assert all(name in shown for name in names)


def test_a_deploy_past_max_functions_is_refused_before_anything_changes(tmp_path: Path):
    home = tmp_path / "home"
    platform = PlatformProcess(start_platform(home, tmp_path / "platform.log", env={"LEPTON_MAX_FUNCTIONS": "1"}), home, tmp_path)
    try:
        refused = platform.cli("deploy", str(MANY))
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert (
            refused.stderr.strip()
            .splitlines()[-1]
            .endswith(
                "at most 1 functions (limits.max_functions in config.yaml); 0 are deployed and this deploy adds 7; nothing was deployed"
            )
        )
        with platform.client() as api:
            assert list(api.pages("/v1/functions")) == []
        assert platform.deploy(MANY, "single")[0]["status"] == "ready"
        assert platform.deploy(MANY, "single")[0]["changed"] is False, "redeploying a function it holds adds none"
        with pytest.raises(InvocationError) as one_more:
            platform.deploy(MANY, "s1")
        assert one_more.value.status_code == 422 and "1 are deployed and this deploy adds 1" in str(one_more.value)
        with platform.client() as api:
            assert [fn["name"] for fn in api.pages("/v1/functions")] == ["single"]
    finally:
        platform.process.stop()
