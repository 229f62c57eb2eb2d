"""Soak: mixed HTTP invocations, CloudEvents and bucket uploads against one platform for a
while, in bursts so replicas scale up and down. Prints requests, errors, events accepted vs
delivered, uploads, and the platform's RSS after warm-up and at the end.

    python tests/bench/soak.py [--seconds 600]      # CI runs 30 s of it (tests/embedded/test_soak.py)
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.load import Platform
from tests.helpers import log_records

FUNCTIONS = Path(__file__).resolve().parents[2] / "tests" / "functions" / "platform"


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class Tally:
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    uploads: int = 0
    peak_replicas: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)


def invoker(url: str, stop: threading.Event, busy: threading.Event, tally: Tally) -> None:
    with httpx.Client(timeout=60) as http:
        while not stop.is_set():
            if not busy.is_set():
                time.sleep(0.05)
                continue
            try:
                response = http.post(f"{url}/fn/work", json={"seconds": 0.02})
                if response.status_code != 200:
                    tally.fail(f"work: HTTP {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                tally.fail(f"work: {exc}")
            with tally.lock:
                tally.requests += 1


def events(url: str, token: str, stop: threading.Event, tally: Tally) -> None:
    n = 0
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            batch = [
                {"specversion": "1.0", "id": f"soak-{n + i}", "source": "/soak", "type": "com.example.order", "data": {"n": n + i}}
                for i in range(10)
            ]
            n += 10
            try:
                response = http.post(
                    f"{url}/v1/events", content=json.dumps(batch), headers={"content-type": "application/cloudevents-batch+json"}
                )
                if response.status_code == 202:
                    tally.events.extend(e["id"] for e in batch)
                else:
                    tally.fail(f"events: HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                tally.fail(f"events: {exc}")
            time.sleep(0.05)


def uploads(url: str, token: str, stop: threading.Event, tally: Tally) -> None:
    n = 0
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        http.put(f"{url}/v1/buckets/soak")
        while not stop.is_set():
            key = f"objects/{n % 50}.bin"  # overwrite a rolling set, so the store stays small
            try:
                response = http.put(f"{url}/v1/buckets/soak/objects/{key}", content=bytes([n % 256]) * 65536)
                if response.status_code != 201:
                    tally.fail(f"upload: HTTP {response.status_code}")
                elif http.get(f"{url}/v1/buckets/soak/objects/{key}").content != bytes([n % 256]) * 65536:
                    tally.fail(f"upload: {key} read back wrong")
                tally.uploads += 1
            except httpx.HTTPError as exc:
                tally.fail(f"upload: {exc}")
            n += 1
            time.sleep(0.02)


def delivered(home: str) -> list[str]:
    return [json.loads(line)["attrs"]["id"] for line in log_records(home, "RECEIVED")]


def soak(seconds: float, *, clients: int = 8, burst: float = 3.0) -> dict:
    platform = Platform()
    try:
        platform.deploy(FUNCTIONS / "app.py")
        platform.deploy(FUNCTIONS / "events.py")
        tally = Tally()
        stop, busy = threading.Event(), threading.Event()
        token = platform.api.token
        threads = [threading.Thread(target=invoker, args=(platform.url, stop, busy, tally)) for _ in range(clients)]
        threads += [
            threading.Thread(target=events, args=(platform.url, token, stop, tally)),
            threading.Thread(target=uploads, args=(platform.url, token, stop, tally)),
        ]
        for thread in threads:
            thread.start()
        started = time.monotonic()
        rss_start = None
        while time.monotonic() - started < seconds:
            busy.set() if int((time.monotonic() - started) / burst) % 2 == 0 else busy.clear()
            tally.peak_replicas = max(tally.peak_replicas, platform.info("work")["replicas"])
            if rss_start is None and time.monotonic() - started > min(10.0, seconds / 3):
                rss_start = rss(platform.proc.pid)  # after warm-up: pools, caches and replicas exist
            time.sleep(0.2)
        stop.set()
        for thread in threads:
            thread.join()
        rss_end = rss(platform.proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(tally.events) <= set(delivered(platform.home)):
            time.sleep(0.2)
        got = [i for i in delivered(platform.home) if i.startswith("soak-")]
        return {
            "seconds": seconds,
            "requests": tally.requests,
            "errors": tally.errors,
            "events_accepted": len(tally.events),
            "events_delivered": len(set(got) & set(tally.events)),
            "duplicates": len(got) - len(set(got)),
            "uploads": tally.uploads,
            "peak_replicas": tally.peak_replicas,
            "rss_start_mb": round((rss_start or 0) / 2**20, 1),
            "rss_end_mb": round(rss_end / 2**20, 1),
        }
    finally:
        platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    args = parser.parse_args()
    result = soak(args.seconds)
    print(
        f"soak for {result['seconds']:g} s: {result['requests']} invocations, {len(result['errors'])} errors, "
        f"peak {result['peak_replicas']} replicas of `work`"
    )
    print(f"  events: {result['events_accepted']} accepted, {result['events_delivered']} delivered, {result['duplicates']} duplicates")
    print(f"  uploads: {result['uploads']} (64 KiB, each read back)")
    print(f"  platform RSS: {result['rss_start_mb']} MiB after warm-up, {result['rss_end_mb']} MiB at the end")
    for error in result["errors"][:10]:
        print(f"  error: {error}")


if __name__ == "__main__":
    main()
