"""Functions the console tests deploy: one to roll back (VERSION is rewritten per deploy), one
whose log lines are HTML, one that dead-letters events until a bucket object switches it on,
and one that shows its scoped token (a token the console must refuse)."""

import os

import lepton

VERSION = 1


@lepton.function(public=True)
def greet(name: str) -> dict:
    print(f"greeted {name} by version {VERSION}", flush=True)
    return {"hello": name, "version": VERSION}


@lepton.function()
def shouty(text: str) -> str:
    print(f"<script>alert(1)</script><b>bold</b> {text}", flush=True)
    return text


@lepton.function(buckets=["switch"], triggers=[lepton.on_event(type="com.example.console", delivery=lepton.Delivery(retry=0))])
def picky(event: lepton.CloudEvent) -> None:
    if not lepton.bucket("switch").exists("on"):
        raise RuntimeError("switched off")
    os.write(1, f"DELIVERED {event.get_id()}\n".encode())


@lepton.function()
def whoami() -> str:
    return os.environ["LEPTON_TOKEN"]
