"""Sample user code: one function per handler kind, served one at a time by the tests."""

import asyncio
import os
import time
from collections.abc import Iterator

from fastapi import HTTPException
from pydantic import BaseModel

import lepton


class Order(BaseModel):
    item: str
    quantity: int


class Receipt(BaseModel):
    item: str
    total: float


@lepton.function
def add(a: int, b: int = 0) -> int:
    return a + b


@lepton.function
def checkout(order: Order) -> Receipt:
    if order.quantity <= 0:
        raise HTTPException(status_code=400, detail="quantity must be positive")
    return Receipt(item=order.item, total=order.quantity * 2.5)


@lepton.function
async def shout(text: str) -> str:
    await asyncio.sleep(0)
    return text.upper()


@lepton.function
def divide(a: float, b: float) -> float:
    return a / b


@lepton.function
def first(items: list[int]) -> int:
    return next(iter(items))


@lepton.function(timeout=1)
def sleepy(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@lepton.function(timeout=3)
def mark(seconds: float, name: str) -> str:
    """Leaves a file named `name` in $MARKS once it has run."""
    time.sleep(seconds)
    with open(os.path.join(os.environ["MARKS"], name), "w"):
        return name


@lepton.function
def pid() -> int:
    return os.getpid()


@lepton.function
def count(n: int) -> Iterator[int]:
    yield from range(n)


@lepton.function
async def words(text: str):
    for word in text.split():
        await asyncio.sleep(0.01)
        yield word + " "


@lepton.function
def flaky_stream(n: int) -> Iterator[int]:
    yield 1
    raise RuntimeError("stream broke")


@lepton.function
def echo_event(event: lepton.CloudEvent) -> lepton.CloudEvent:
    data = event.get_data()
    reply = data[::-1] if isinstance(data, bytes) else {"got": data, "id": event.get_id()}
    attrs = {"type": "com.example.echoed", "source": "/echo", "subject": event.get_type()}
    if isinstance(reply, bytes):
        attrs["datacontenttype"] = "application/octet-stream"
    return lepton.CloudEvent(attrs, reply)


@lepton.function
def sink_event(event: lepton.CloudEvent) -> None:
    return None


@lepton.function(batch=lepton.Batch(max_size=8, max_wait_ms=200))
def batched_square(xs: list[int]) -> list[dict]:
    if any(x < 0 for x in xs):
        raise ValueError(f"negative input in {xs}")
    return [{"square": x * x, "batch": len(xs)} for x in xs]
