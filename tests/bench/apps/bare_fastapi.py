"""The baseline: a bare FastAPI app doing the same work as `lepton_add.py`."""

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI()


class AddInput(BaseModel):
    a: int
    b: int = 0


@app.post("/")
def add(body: AddInput) -> int:
    return body.a + body.b


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
