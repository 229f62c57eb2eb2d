"""`make demo`: the main job on the embedded platform, end to end.

Starts `lepton up` in a temporary LEPTON_HOME. Part one: deploys examples/hello.py with the CLI,
invokes it (cold, then warm), deploys a new revision, rolls back, and shows the function
scaling to zero and waking again. Part two: deploys every function in functions/, uploads
digit images and documents to buckets, sends device events, invokes the models, and prints
the results with timings and the cold starts seen. Then it stops the platform.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
FUNCTIONS = HERE.parent / "functions"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-m", "lepton.cli", *args], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"demo: `lepton {' '.join(args)}` failed:\n{result.stderr}")
    return result.stdout.strip()


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def call(http: httpx.Client, url: str, payload: dict, show: object = None) -> httpx.Response:
    started = time.perf_counter()
    response = http.post(url, json=payload)
    ms = (time.perf_counter() - started) * 1000
    cold = "cold start" if response.headers.get("x-lepton-cold-start") == "1" else "warm"
    shown = show if show is not None else payload
    print(f"   {shown} -> {response.json()}  [{response.headers.get('x-lepton-revision')}, {cold}, {ms:.1f} ms]")
    return response


def wait_for(check, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise SystemExit("demo: timed out waiting for the platform")


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="lepton-demo-"))
    port = free_port()
    env = {**os.environ, "LEPTON_HOME": str(home), "LEPTON_URL": f"http://127.0.0.1:{port}"}
    env.pop("LEPTON_TOKEN", None)
    step(f"lepton up --port {port}   (state in {home})")
    # The template process preloads sentence-transformers too, so embedding functions fork warm.
    platform = subprocess.Popen(
        [sys.executable, "-m", "lepton.cli", "up", "--port", str(port), "--log-level", "warning"],
        env={**env, "LEPTON_PRELOAD": "sentence_transformers"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json()["template_process"]:
                    break
            except httpx.TransportError:
                pass
            if platform.poll() is not None or time.monotonic() > deadline:
                print("demo: the platform did not start", file=sys.stderr)
                return 1
            time.sleep(0.1)
        print("   platform up; template process ready")

        work = home / "src"
        work.mkdir()
        source = work / "hello.py"
        source.write_text((HERE / "hello.py").read_text().replace("max_scale=4)", "max_scale=4, scale_down_after=2)"))
        step("lepton deploy hello.py")
        print("   " + cli("deploy", str(source), env=env))
        url = f"http://127.0.0.1:{port}/fn/hello"
        with httpx.Client(timeout=30) as http:
            step("invoke (public function, plain HTTP)")
            call(http, url, {"name": "Ada"})
            call(http, url, {"name": "Grace", "excited": True})
            print("   lepton invoke:", cli("invoke", "hello", '{"name": "CLI"}', env=env))

            step("deploy a new revision, then roll back")
            source.write_text(source.read_text().replace("Hello,", "Bonjour,"))
            print("   " + cli("deploy", str(source), env=env))
            call(http, url, {"name": "Ada"})
            print("   " + cli("rollback", "hello", env=env))
            call(http, url, {"name": "Ada"})
            print(cli("revisions", "hello", env=env))

            step("scale to zero after 2 s without traffic, then wake on the next request")
            for _ in range(100):
                info = httpx.get(
                    f"http://127.0.0.1:{port}/v1/functions/hello",
                    headers={"Authorization": "Bearer " + (home / "token").read_text().strip()},
                ).json()
                if info["replicas"] == 0:
                    break
                time.sleep(0.1)
            print(f"   replicas now: {info['replicas']}")
            call(http, url, {"name": "again"})
        ai_workloads(port, env)
        print(cli("ls", env=env))
        return 0
    finally:
        step("stopping the platform")
        platform.send_signal(signal.SIGTERM)
        platform.wait(30)
        shutil.rmtree(home, ignore_errors=True)
        print("   stopped")


def ai_workloads(port: int, env: dict[str, str]) -> None:
    import base64
    import json

    import numpy as np
    from sklearn.datasets import load_digits

    import lepton

    sys.path.insert(0, str(FUNCTIONS / "digits"))
    sys.path.insert(0, str(FUNCTIONS / "anomaly"))
    from digitnet import grid_to_png
    from sensors import faulty, healthy, reading

    base = f"http://127.0.0.1:{port}"
    api = lepton.Client(base, (Path(env["LEPTON_HOME"]) / "token").read_text().strip())
    step("deploy every function in functions/")
    for name in ("digits", "embed", "anomaly"):
        started = time.perf_counter()
        out = cli("deploy", str(FUNCTIONS / name / "main.py"), env=env)
        print("   " + out.replace("\n", "\n   ") + f"\n   ({name}: {time.perf_counter() - started:.1f} s)")

    digits = load_digits()
    picks = [1200 + i for i in range(6)]
    with httpx.Client(timeout=60, headers={"Authorization": f"Bearer {api.token}"}) as http:
        step("digits over HTTP: an 8x8 array, then a PNG (concurrent calls share one forward pass)")
        for i in picks[:2]:
            call(http, f"{base}/fn/digits", {"image": digits.images[i].tolist()}, show=f"image of a {digits.target[i]}")
        png = base64.b64encode(grid_to_png(digits.images[picks[2]].tolist())).decode()
        call(http, f"{base}/fn/digits", {"image": png}, show=f"PNG of a {digits.target[picks[2]]}")
        from concurrent.futures import ThreadPoolExecutor

        burst = list(range(1300, 1556))
        started = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            answers = list(
                pool.map(lambda i: http.post(f"{base}/fn/digits", json={"image": digits.images[i].tolist()}).json()["digit"], burst)
            )
        right = sum(a == digits.target[i] for a, i in zip(answers, burst))
        print(f"   {len(burst)} images from 32 concurrent clients in {time.perf_counter() - started:.2f} s: {right}/{len(burst)} right")

        step("a PNG posted as a form (digits-form), an async job, and Client.map over 100 images")
        answer = http.post(
            f"{base}/fn/digits-form", files={"image": ("digit.png", grid_to_png(digits.images[picks[3]].tolist()), "image/png")}
        )
        print(f"   form upload of a {digits.target[picks[3]]}: predicted {answer.json()['digit']}")
        job = api.spawn("digits", image=digits.images[picks[4]].tolist())
        print(
            f"   job {job.id} of a {digits.target[picks[4]]}: predicted {job.result(timeout=60)['digit']} "
            f"after {job.status()['attempts']} attempt"
        )
        started = time.perf_counter()
        mapped = list(api.map("digits", ({"image": digits.images[i].tolist()} for i in range(1600, 1700)), concurrency=16))
        right = sum(a["digit"] == digits.target[i] for a, i in zip(mapped, range(1600, 1700)))
        print(f"   Client.map: {right}/100 right in {time.perf_counter() - started:.2f} s, in input order")

        step("upload digit PNGs to the `images` bucket: digits-upload writes predictions")
        images = lepton.bucket("images", api)
        for i in picks:
            images.put(f"in/{i}.png", grid_to_png(digits.images[i].tolist()))
        predictions = lepton.bucket("predictions", api)
        wait_for(lambda: len(list(predictions.list("in/"))) == len(picks))
        for i in picks:
            got = json.loads(predictions.get(f"in/{i}.png.json"))
            print(f"   in/{i}.png: true {digits.target[i]}, predicted {got['digit']} ({got['confidence']:.0%})")

        step("documents to the `docs` bucket: index-docs embeds them; search finds passages")
        docs = lepton.bucket("docs", api)
        for path in sorted((HERE / "docs").glob("*.txt")):
            docs.put(path.name, path.read_bytes())
        wait_for(lambda: len(list(lepton.bucket("docs-index", api).list("vectors/"))) == len(list((HERE / "docs").glob("*.txt"))))
        for query in ("how do tides form?", "why train neural networks on graphics cards", "keeping sourdough alive"):
            started = time.perf_counter()
            hits = http.post(f"{base}/fn/search", json={"query": query, "k": 1}).json()
            print(
                f"   {query!r} -> {hits[0]['doc']}: {hits[0]['passage'][:70]}... ({hits[0]['score']:.2f}, {(time.perf_counter() - started) * 1000:.0f} ms)"
            )

        step("device events: detect flags anomalies, alerts stores them in the `alerts` bucket")
        rng = np.random.default_rng(3)
        rows = [(f"motor-{i}", row) for i, row in enumerate(healthy(8, rng))]
        rows += [("motor-8", faulty(1, rng, "bearing")[0]), ("motor-9", faulty(1, rng, "overheat")[0])]
        events = [
            {
                "specversion": "1.0",
                "id": f"reading-{device}",
                "source": "/plant/line-1",
                "type": "dev.lepton.sensor.reading",
                "datacontenttype": "application/json",
                "data": reading(row, device),
            }
            for device, row in rows
        ]
        started = time.perf_counter()
        accepted = http.post(
            f"{base}/v1/events", content=json.dumps(events), headers={"content-type": "application/cloudevents-batch+json"}
        ).json()
        print(f"   sent {len(events)} readings (2 from faulty motors): {accepted['accepted']} accepted")
        alerts = lepton.bucket("alerts", api)
        found = wait_for(lambda: len(keys := [o["key"] for o in alerts.list("alerts/")]) >= 2 and keys)
        print(f"   alerts after {time.perf_counter() - started:.2f} s: {', '.join(found)}")

        step("cold starts seen (platform metrics)")
        for line in http.get(f"{base}/metrics").text.splitlines():
            if line.startswith("lepton_cold_starts_total"):
                print("   " + line)


if __name__ == "__main__":
    sys.exit(main())
