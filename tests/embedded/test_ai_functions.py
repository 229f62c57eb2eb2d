"""The AI workloads in functions/, deployed on a real platform and driven the way a user
would: HTTP calls, bucket uploads and device events."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.embedded.conftest import PlatformProcess, start_platform
from tests.embedded.test_events import STRUCTURED, settled
from tests.helpers import wait_for

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def load(path: Path) -> Any:
    """Import a module of functions/ by path (they are deployable folders, not packages)."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"fn_{path.parent.name}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


@pytest.fixture(scope="module")
def ai(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    folder = tmp_path_factory.mktemp("ai")
    running = PlatformProcess(
        start_platform(folder / "home", folder / "platform.log", env={"LEPTON_PRELOAD": "sentence_transformers"}),
        folder / "home",
        folder / "src",
    )
    for name in ("digits", "embed", "anomaly"):
        running.deploy(FUNCTIONS / name / "main.py")
    yield running
    running.process.stop(signal.SIGTERM)


def test_digits_over_http_is_accurate_and_checks_its_input(ai):
    train = load(FUNCTIONS / "digits" / "train.py")
    model = load(FUNCTIONS / "digits" / "digitnet.py")
    _, _, x_test, y_test = train.split()
    grids = (x_test[:96, 0] * 16).tolist()
    with ai.http() as http, ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda g: http.post("/fn/digits", json={"image": g}).json()["digit"], grids))
        accuracy = float(np.mean(np.array(answers) == y_test[:96].numpy()))
        assert accuracy >= 0.95, accuracy
        png = base64.b64encode(model.grid_to_png(grids[0])).decode()
        assert http.post("/fn/digits-single", json={"image": png}).json()["digit"] == answers[0]
        bad = http.post("/fn/digits", json={"image": [[0] * 8] * 7})
        assert bad.status_code == 422 and "image" in json.dumps(bad.json()["detail"])
        assert http.post("/fn/digits", json={"image": [[99] * 8] * 8}).status_code == 422


def test_a_png_uploaded_to_images_gets_a_prediction(ai):
    train = load(FUNCTIONS / "digits" / "train.py")
    model = load(FUNCTIONS / "digits" / "digitnet.py")
    _, _, x_test, y_test = train.split()
    with ai.http() as http:
        http.put(
            "/v1/buckets/images/objects/in/test-3.png",
            content=model.grid_to_png((x_test[3, 0] * 16).tolist()),
            headers={"content-type": "image/png"},
        )
        http.put("/v1/buckets/images/objects/elsewhere/skip.png", content=b"not read")
        found = wait_for(
            lambda: (r := http.get("/v1/buckets/predictions/objects/in/test-3.png.json")).status_code == 200 and r.json(),
            timeout=30,
            message="prediction written",
        )
        assert found["digit"] == int(y_test[3])
        assert http.get("/v1/buckets/predictions/objects/elsewhere/skip.png.json").status_code == 404


def test_a_png_uploaded_as_a_form_is_classified(ai):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    with ai.http() as http:
        for i in range(8):
            ink = Image.fromarray((digits.images[i] * 255 / 16).astype(np.uint8))  # 8-bit grey
            png = io.BytesIO()
            ink.resize((32, 32), Image.Resampling.NEAREST).save(png, format="PNG")
            answer = http.post("/fn/digits-form", files={"image": (f"digit-{i}.png", png.getvalue(), "image/png")})
            assert answer.status_code == 200, answer.text
            assert answer.json()["digit"] == int(digits.target[i]), (i, answer.json())
        missing = http.post("/fn/digits-form", data={"picture": "none"})
        assert missing.status_code == 422 and "'image'" in missing.json()["detail"]


DOCS = {
    "cooking.txt": "To bake sourdough bread, feed the starter, mix flour and water, and let the dough rise overnight.\n\n"
    "A hot oven and steam give the loaf its crust.",
    "gpus.txt": "Graphics processors run thousands of threads at once, which is why neural network training uses them.\n\n"
    "Memory bandwidth often limits inference speed more than arithmetic.",
    "sailing.txt": "Reefing the mainsail reduces sail area when the wind picks up.\n\nTacking turns the bow through the wind.",
}


def test_documents_are_indexed_on_upload_and_searchable(ai):
    with ai.http(timeout=60) as http:
        vector = http.post("/fn/embed", json={"text": "hello world"}).json()
        assert len(vector) == 384 and abs(sum(v * v for v in vector) - 1) < 0.01
        for name, text in DOCS.items():
            http.put(f"/v1/buckets/docs/objects/{name}", content=text.encode(), headers={"content-type": "text/plain"})
        wait_for(
            lambda: len(http.get("/v1/buckets/docs-index/objects", params={"prefix": "vectors/"}).json()["objects"]) == 3,
            timeout=60,
            message="three documents indexed",
        )
        hits = http.post("/fn/search", json={"query": "why are GPUs used for deep learning?", "k": 2}).json()
        assert hits[0]["doc"] == "gpus.txt" and hits[0]["score"] > hits[1]["score"]
        assert http.post("/fn/search", json={"query": "how do I make bread rise"}).json()[0]["doc"] == "cooking.txt"
        http.delete("/v1/buckets/docs/objects/sailing.txt")
        wait_for(
            lambda: len(http.get("/v1/buckets/docs-index/objects", params={"prefix": "vectors/"}).json()["objects"]) == 2,
            timeout=30,
            message="deleted document dropped from the index",
        )
        assert all(h["doc"] != "sailing.txt" for h in http.post("/fn/search", json={"query": "wind and sails", "k": 5}).json())


def test_device_events_raise_alerts_only_for_faults(ai):
    sensors = load(FUNCTIONS / "anomaly" / "sensors.py")
    rng = np.random.default_rng(5)
    run = uuid.uuid4().hex[:6]
    readings = [sensors.reading(row, f"motor-{run}-ok-{i}") for i, row in enumerate(sensors.healthy(6, rng))]
    readings += [
        sensors.reading(sensors.faulty(1, rng, "bearing")[0], f"motor-{run}-bearing"),
        sensors.reading(sensors.faulty(1, rng, "stall")[0], f"motor-{run}-stall"),
    ]
    events = [
        {
            "specversion": "1.0",
            "id": f"r-{run}-{i}",
            "source": "/devices",
            "type": "dev.lepton.sensor.reading",
            "datacontenttype": "application/json",
            "data": r,
        }
        for i, r in enumerate(readings)
    ]
    with ai.http() as http:
        sent = http.post("/v1/events", content=json.dumps(events), headers={"content-type": "application/cloudevents-batch+json"})
        assert sent.status_code == 202

        def alert_keys() -> list[str]:
            listed = http.get("/v1/buckets/alerts/objects", params={"prefix": "alerts/"}).json()["objects"]
            return [o["key"] for o in listed if run in o["key"]]

        wait_for(lambda: len(alert_keys()) >= 2, timeout=30, message="two alerts")
        # detect publishes an alert before its delivery is acknowledged: once detect owes
        # nothing, then alerts owes nothing, every reading was scored and every alert stored.
        wait_for(lambda: settled(ai, "detect") and settled(ai, "alerts"), timeout=30, message="every reading scored, every alert stored")
        alerts = alert_keys()
        devices = {key.split("/")[1] for key in alerts}
        assert devices == {f"motor-{run}-bearing", f"motor-{run}-stall"}, alerts
        alert = json.loads(http.get(f"/v1/buckets/alerts/objects/{alerts[0]}").content)
        assert alert["score"] > alert["threshold"] and alert["reading"]["device"] in devices
        bad = http.post(
            "/v1/events",
            json={
                "specversion": "1.0",
                "id": f"bad-{run}",
                "source": "/devices",
                "type": "dev.lepton.sensor.reading",
                "data": {"device": "x"},
            },
            headers=STRUCTURED,
        )
        assert bad.status_code == 202
        dead = wait_for(
            lambda: [d for d in http.get("/v1/deadletters").json() if d["event"]["id"] == f"bad-{run}"],
            timeout=30,
            message="a malformed reading ends in the dead letters",
        )
        assert "a reading needs numbers" in dead[0]["message"]
