"""Takes the README's console screenshots (docs/console-functions.png, docs/console-function.png):
starts `lepton up` in a temporary home, deploys a few functions (one with a 10% canary), sends
them traffic for a few minutes so the charts have a shape, and photographs two pages with
headless chromium at 1280x800.

    .venv/bin/python docs/console_screenshots.py [--minutes 4]

Needs Debian's `chromium` and `chromium-driver` (and selenium, from the `test` extra).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
FUNCTIONS = """
import random, time
import lepton

VERSION = {version}


@lepton.function(public=True, max_scale=4)
def thumbnail(width: int = 128) -> dict:
    time.sleep(random.uniform(0.004, 0.02))
    return {{"width": width}}


@lepton.function(max_scale=4, scale_down_after=600)
def summarize(text: str) -> dict:
    time.sleep(random.uniform(0.02, 0.09) * (0.8 if VERSION == 2 else 1))
    if random.random() < 0.02:
        raise RuntimeError("model timed out")
    print(f"summarized {{len(text)}} characters (v{{VERSION}})", flush=True)
    return {{"summary": text[:40], "version": VERSION}}


@lepton.function(public=True)
def classify(label: str = "cat") -> dict:
    time.sleep(random.uniform(0.001, 0.006))
    return {{"label": label, "score": random.random()}}


@lepton.function(triggers=[lepton.on_event(type="com.example.order")])
def orders(event: lepton.CloudEvent) -> None:
    print("order", event.get_id(), flush=True)


@lepton.function(buckets=["images"])
def nightly() -> str:
    return "done"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def lepton(home: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "lepton.cli", *args],
        check=True,
        cwd=ROOT,
        env={**os.environ, "LEPTON_HOME": str(home)},
        stdout=subprocess.DEVNULL,
    )


def traffic(url: str, token: str, minutes: float) -> None:
    """Calls whose rate rises and falls, differently per function."""
    started = time.monotonic()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        while time.monotonic() - started < minutes * 60:
            phase = (time.monotonic() - started) / 60
            for name, body, rate in (
                ("summarize", {"text": "a long document " * 20}, 3 + 2 * math.sin(phase * 2)),
                ("thumbnail", {"width": 256}, 5 + 4 * math.cos(phase * 1.3)),
                ("classify", {"label": "dog"}, 2 + 2 * math.sin(phase * 3 + 1)),
            ):
                for _ in range(max(0, round(rate + random.uniform(-1, 1)))):
                    http.post(f"/fn/{name}", json=body)
            event = {"ce-specversion": "1.0", "ce-id": os.urandom(8).hex(), "ce-source": "/shop", "ce-type": "com.example.order"}
            http.post("/v1/events", content=b"{}", headers={**event, "content-type": "application/json"})
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4, help="how long to send traffic before the screenshots")
    minutes = parser.parse_args().minutes
    with tempfile.TemporaryDirectory() as folder:
        home, port = Path(folder) / "home", free_port()
        url = f"http://127.0.0.1:{port}"
        platform = subprocess.Popen(
            [sys.executable, "-m", "lepton.cli", "up", "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "LEPTON_HOME": str(home), "LEPTON_PRELOAD": "none"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            while True:
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            token = (home / "token").read_text().strip()
            for version in (1, 2):
                source = Path(folder) / f"v{version}" / "demo.py"
                source.parent.mkdir()
                source.write_text(FUNCTIONS.format(version=version))
                if version == 1:
                    lepton(home, "deploy", str(source), "--platform", url)
                else:
                    lepton(home, "deploy", f"{source}:summarize", "--traffic", "10", "--platform", url)
            traffic(url, token, minutes)
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,800", "--hide-scrollbars"):
                options.add_argument(argument)
            driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}
            )
            try:
                driver.get(f"{url}/ui/signin")
                driver.find_element(By.ID, "token").send_keys(token)
                driver.find_element(By.ID, "signin").click()
                time.sleep(0.5)
                driver.save_screenshot(str(DOCS / "console-functions.png"))
                driver.get(f"{url}/ui/functions/summarize")
                time.sleep(1.5)  # the log tail fills in
                driver.save_screenshot(str(DOCS / "console-function.png"))
            finally:
                driver.quit()
        finally:
            platform.terminate()
            platform.wait(10)
    print("wrote", DOCS / "console-functions.png", "and", DOCS / "console-function.png")


if __name__ == "__main__":
    main()
