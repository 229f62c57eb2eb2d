"""The web console at `/ui/` against a real `lepton up`: who may sign in, CSRF on every form,
escaping of what functions write, and a real browser (Debian's chromium, driven by Selenium)
signing in, rolling back, following a log tail, redelivering a dead letter and splitting
traffic by clicking. `.ci/run` installs chromium; under CI a missing one fails the browser
tests rather than skipping them."""

from __future__ import annotations

import html
import os
import re
import shutil
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from lepton.runtime.metrics import LATENCY_BUCKETS
from lepton_platform.history import History, quantile
from tests.embedded.conftest import PlatformProcess, start_platform
from tests.helpers import FUNCTIONS, log_records, wait_for

SOURCE = FUNCTIONS / "console" / "console.py"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
HTML_LINE = "<script>alert(1)</script><b>bold</b>"
HOSTILE_KEY = "<img src=x onerror=alert(1)>.txt"


def version(folder: Path, number: int) -> Path:
    """tests/functions/console/console.py with VERSION set, in a folder of its own."""
    path = folder / f"v{number}" / "console.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SOURCE.read_text().replace("VERSION = 1", f"VERSION = {number}"))
    return path


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    """Every console function deployed, and `greet` deployed again: two revisions to choose from."""
    folder = tmp_path_factory.mktemp("console")
    running = PlatformProcess(start_platform(folder / "home", folder / "platform.log"), folder / "home", folder)
    try:
        running.deploy(version(folder, 1))
        running.deploy(version(folder, 2), "greet")
        yield running
    finally:
        running.process.stop(signal.SIGTERM)


@contextmanager
def signed_in(platform: PlatformProcess) -> Iterator[tuple[httpx.Client, str]]:
    """A client holding a console session, and the session's CSRF token."""
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        answer = client.post("/ui/signin", data={"token": platform.token})
        assert answer.status_code == 303, answer.text
        page = client.get("/ui/functions")
        yield client, re.search(r'name="csrf-token" content="([^"]+)"', page.text)[1]


def routed(platform: PlatformProcess, name: str) -> str:
    return platform.info(name)["revision"]


# -- the history behind the charts ------------------------------------------------------------


def test_history_keeps_an_hour_a_minute_at_a_time():
    history = History(LATENCY_BUCKETS)
    for seconds, error in ((0.002, False), (0.004, False), (0.2, True)):
        history.record("f", error, seconds, cold=error)
    summary = history.summary("f")
    assert (summary.requests, summary.errors, summary.cold) == (3, 1, 1)
    assert 0.0025 <= summary.p50 <= 0.005 and 0.1 <= summary.p99 <= 0.25
    assert sum(summary.per_minute["requests"][-2:]) == 3
    assert len(summary.per_minute["requests"]) == 15, "just started: the charts span a quarter of an hour, not sixty empty minutes"
    later = history.summary("f", now=time.time() + 3600)
    assert later.requests == 0 and later.p50 is None, "an hour later the minute has left the window"
    assert len(later.per_minute["p99"]) == 60
    assert history.summary("never-called").per_minute["requests"] == [0] * 15 and "never-called" not in history._slots
    history.forget("f")
    assert history.summary("f").requests == 0


def test_quantiles_interpolate_within_a_bucket_like_prometheus():
    bounds = (0.1, 0.2, 0.4)
    assert quantile(0.5, [0, 0, 0, 0], bounds) is None
    assert quantile(0.5, [0, 10, 0, 0], bounds) == pytest.approx(0.15)
    assert quantile(0.99, [10, 0, 0, 1], bounds) == 0.4, "past the last bound: the last bound"


# -- who may use it ---------------------------------------------------------------------------


def test_without_a_session_pages_redirect_and_actions_get_401(platform):
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        page = client.get("/ui/functions/greet")
        assert page.status_code == 303 and page.headers["location"] == "/ui/signin?next=%2Fui%2Ffunctions%2Fgreet"
        assert client.get("/ui/").headers["location"] == "/ui/functions"
        client.cookies.set("lepton_console", "forged", path="/ui")
        for method, path in [
            ("GET", "/ui/functions/greet/logs"),
            ("POST", "/ui/functions/greet/rollback"),
            ("POST", "/ui/functions/greet/traffic"),
            ("POST", "/ui/deadletters/1/redeliver"),
            ("GET", "/ui/buckets/switch/download?key=on"),
            ("POST", "/ui/buckets/switch/uploads"),
            ("GET", "/ui/jobs/abc/result"),
            ("POST", "/ui/signout"),
        ]:
            assert client.request(method, path, data={"csrf": "x", "revision": "greet-00001"}).status_code == 401, path
        assert client.get("/ui/static/console.css").status_code == 200, "the stylesheet is no secret"


def test_only_the_admin_token_signs_in(platform):
    with platform.http() as api:
        key = api.post("/v1/keys", json={}).json()["key"]
        scoped = api.post("/fn/whoami", json={}).json()
    with httpx.Client(base_url=platform.url, timeout=30) as client:
        for token, status, says in [
            ("", 401, "Enter the platform"),
            ("not-the-token", 403, "not the platform's admin token"),
            (key, 403, "access key"),
            (scoped, 403, "function whoami's scoped token"),
        ]:
            answer = client.post("/ui/signin", data={"token": token})
            assert answer.status_code == status and says in html.unescape(answer.text), (token, answer.text)
            assert "set-cookie" not in answer.headers
        signed = client.post("/ui/signin", data={"token": platform.token, "next": "//evil.example/ui/"})
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/functions", "never sends anyone off-site"
    cookie = signed.headers["set-cookie"]
    assert cookie.startswith("lepton_console=") and "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "frame-ancestors 'none'" in signed.headers["content-security-policy"]


def test_every_form_needs_the_sessions_csrf_token(platform):
    with signed_in(platform) as (client, csrf):
        before = routed(platform, "greet")
        other = "greet-00001" if before != "greet-00001" else "greet-00002"
        for data in ({"revision": other}, {"revision": other, "csrf": "wrong"}, {"revision": other, "csrf": csrf + "x"}):
            refused = client.post("/ui/functions/greet/rollback", data=data)
            assert refused.status_code == 403 and "CSRF" in refused.text
        assert client.post("/ui/functions/greet/traffic", data={f"share.{other}": "100"}).status_code == 403
        assert client.post("/ui/buckets/switch/uploads", json={"key": "k"}, headers={"x-csrf-token": "wrong"}).status_code == 403
        assert client.post("/ui/signout").status_code == 403
        assert routed(platform, "greet") == before, "nothing changed"
        assert client.get("/ui/functions/greet").status_code == 200, "and the session still works"
        # Signing out with the token ends the session for good, even for a copy of its cookie.
        cookie = client.cookies.get("lepton_console")
        out = client.post("/ui/signout", data={"csrf": csrf})
        assert out.status_code == 303 and 'lepton_console=""' in out.headers["set-cookie"]
        stale = httpx.get(f"{platform.url}/ui/functions/greet/logs", cookies={"lepton_console": cookie})
        assert stale.status_code == 401


def test_buckets_upload_and_download_through_signed_urls_and_keys_are_text(platform):
    with signed_in(platform) as (client, csrf):
        signed = client.post("/ui/buckets/switch/uploads", json={"key": HOSTILE_KEY}, headers={"x-csrf-token": csrf})
        assert signed.status_code == 200 and "signature=" in signed.json()["url"]
        assert (
            httpx.put(platform.url + signed.json()["url"], content=b"<p>hi</p>", headers={"content-type": "text/html"}).status_code == 201
        )
        page = client.get("/ui/buckets/switch")
        assert "&lt;img src=x onerror=alert(1)&gt;.txt" in page.text and "<img src=x" not in page.text
        assert client.get("/ui/buckets").status_code == 200
        download = client.get("/ui/buckets/switch/download", params={"key": HOSTILE_KEY})
        assert download.status_code == 303 and download.headers["location"].startswith("/v1/buckets/switch/objects/")
        got = httpx.get(platform.url + download.headers["location"])
        assert got.content == b"<p>hi</p>"
        assert got.headers["content-security-policy"] == "sandbox", "uploaded HTML never runs in the console's origin"
        assert client.get("/ui/buckets/switch/download", params={"key": "../x"}).status_code == 400
        assert client.get("/ui/buckets/no-such-bucket").status_code == 404


def test_jobs_are_listed_with_a_link_to_their_result(platform):
    with platform.http() as api:
        job = api.post("/fn/greet", json={"name": "async"}, headers={"Prefer": "respond-async"}).json()["id"]
        assert api.get(f"/v1/jobs/{job}", params={"wait": 30}).json()["state"] == "succeeded"
    with signed_in(platform) as (client, _):
        page = client.get("/ui/jobs", params={"function": "greet", "state": "succeeded"})
        assert job in page.text and f"/ui/jobs/{job}/result" in page.text
        result = client.get(f"/ui/jobs/{job}/result")
        assert result.json()["hello"] == "async" and "sandbox" in result.headers.get_list("content-security-policy")
        assert client.get("/ui/jobs", params={"state": "bogus"}).status_code == 400


def test_functions_page_shows_the_last_hour(platform):
    with platform.http() as api:
        for _ in range(3):
            assert api.post("/fn/greet", json={"name": "x"}).status_code == 200
    with signed_in(platform) as (client, _):
        page = client.get("/ui/functions").text
    row = page[page.index('data-function="greet"') :]
    row = row[: row.index("</tr>")]
    assert int(re.search(r'class="num requests">(\d+)<', row)[1]) >= 3 and '<svg class="spark"' in row


# -- in a browser -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are not installed; .ci/run installs them (apt-get install chromium chromium-driver)")
        pytest.skip("needs Debian's chromium and chromium-driver packages")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def until(driver: object, condition: Callable[[object], object], timeout: float = 20, message: str = "") -> object:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A form's answer reloads the page: elements found before it go stale, and are looked for again.
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message
    )


def css(driver: object, selector: str) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visit(driver: object, platform: PlatformProcess, path: str) -> None:
    """Open a console page, signing in through the form first if the browser has no session."""
    driver.get(platform.url + path)
    if "/ui/signin" in driver.current_url:
        css(driver, "#token")[0].send_keys(platform.token)
        css(driver, "#signin")[0].click()
        until(driver, lambda d: "/ui/signin" not in d.current_url)


def says(driver: object, text: str) -> bool:
    """Waits for the page after a form's POST to show the message the action answered with."""
    until(driver, lambda d: any(text in e.text for e in css(d, ".flash")), message=f"no message saying {text!r}")
    return True


@pytest.mark.slow
def test_browser_signs_in_and_lists_functions(browser, platform):
    browser.delete_all_cookies()
    browser.get(platform.url + "/ui/functions")
    assert "/ui/signin" in browser.current_url
    css(browser, "#token")[0].send_keys("lk_00000000_" + "a" * 43)
    css(browser, "#signin")[0].click()
    assert "not the platform's admin token" in until(browser, lambda d: css(d, "#problem"))[0].text
    visit(browser, platform, "/ui/functions")
    assert browser.current_url.endswith("/ui/functions")
    names = [row.get_attribute("data-function") for row in css(browser, "#functions tbody tr")]
    assert names == ["greet", "picky", "shouty", "whoami"]
    cookie = browser.get_cookie("lepton_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"


@pytest.mark.slow
def test_browser_rolls_back_by_clicking(browser, platform):
    with platform.http() as api:
        api.post("/v1/functions/greet/rollback", json={"revision": "greet-00002"}).raise_for_status()
    visit(browser, platform, "/ui/functions/greet")
    assert css(browser, "#serving")[0].text == "greet-00002"
    css(browser, 'button.rollback[data-revision="greet-00001"]')[0].click()
    assert says(browser, "greet-00001 takes all of greet's traffic now")
    assert css(browser, "#serving")[0].text == "greet-00001" and routed(platform, "greet") == "greet-00001"
    assert httpx.post(f"{platform.url}/fn/greet", json={"name": "x"}).json()["version"] == 1


@pytest.mark.slow
def test_browser_tails_logs_live_and_shows_html_as_text(browser, platform):
    with platform.http() as api:
        api.post("/fn/shouty", json={"text": "warm"}).raise_for_status()
    visit(browser, platform, "/ui/functions/shouty")
    until(browser, lambda d: css(d, "#log-state")[0].text == "live")
    marker = uuid.uuid4().hex
    with platform.http() as api:
        api.post("/fn/shouty", json={"text": marker}).raise_for_status()
    line = until(browser, lambda d: [e for e in css(d, "#log .line") if marker in e.text])[0]
    assert f"{HTML_LINE} {marker}" in line.text, "the markup is shown as the text it is"
    assert not css(browser, "#log b, #log script"), "and never becomes elements"
    assert browser.execute_script("return document.title") == "shouty · Lepton"


@pytest.mark.slow
def test_browser_redelivers_a_dead_letter_by_clicking(browser, platform):
    event_id = f"console-{uuid.uuid4().hex[:8]}"
    headers = {"ce-specversion": "1.0", "ce-id": event_id, "ce-source": "/tests", "ce-type": "com.example.console"}
    with platform.http() as api:
        api.delete("/v1/buckets/switch/objects/on")
        assert api.post("/v1/events", content=b"{}", headers={**headers, "content-type": "application/json"}).status_code == 202
        letter = wait_for(
            lambda: [d["id"] for d in api.get("/v1/deadletters").json() if d["event"]["id"] == event_id],
            message="the event is dead-lettered",
        )[0]
        api.put("/v1/buckets/switch/objects/on", content=b"1").raise_for_status()
    visit(browser, platform, "/ui/events")
    assert "com.example.console" in css(browser, "#triggers")[0].text
    css(browser, f'button.redeliver[data-letter="{letter}"]')[0].click()
    assert says(browser, f"dead letter {letter} is queued")
    assert not css(browser, f'tr[data-letter="{letter}"]')
    wait_for(lambda: event_id in log_records(platform.home, "DELIVERED"), message="delivered after the redelivery")


@pytest.mark.slow
def test_browser_uploads_through_a_signed_url_and_shows_keys_as_text(browser, platform, tmp_path):
    upload = tmp_path / "notes.txt"
    upload.write_text("from the browser")
    visit(browser, platform, "/ui/buckets/switch")
    css(browser, "#upload-file")[0].send_keys(str(upload))
    css(browser, "#upload-key")[0].send_keys("up/<i>hi</i>.txt")
    css(browser, "#upload button")[0].click()
    until(browser, lambda d: any(e.text == "up/<i>hi</i>.txt" for e in css(d, "#objects .key")))
    assert not css(browser, "#objects i")
    with platform.http() as api:
        assert api.get("/v1/buckets/switch/objects/up/<i>hi</i>.txt").text == "from the browser"


@pytest.mark.slow
def test_browser_splits_traffic_by_clicking(browser, platform):
    visit(browser, platform, "/ui/functions/greet")
    for revision, percent in (("greet-00001", "60"), ("greet-00002", "60")):
        box = css(browser, f'input[name="share.{revision}"]')[0]
        box.clear()
        box.send_keys(percent)
    css(browser, "#set-traffic")[0].click()
    assert says(browser, "not 100%"), "a split that does not add up is refused with the platform's reason"
    for revision in ("greet-00001", "greet-00002"):
        box = css(browser, f'input[name="share.{revision}"]')[0]
        box.clear()
        box.send_keys("50")
    css(browser, "#set-traffic")[0].click()
    assert says(browser, "greet's traffic is now greet-00001 50%, greet-00002 50%")
    shares = {t["revision"]: t["percent"] for t in platform.info("greet")["traffic"]}
    assert shares == {"greet-00001": 50, "greet-00002": 50}
    assert [e.text for e in css(browser, "#revisions .percent-text")] == ["50%", "50%"]
