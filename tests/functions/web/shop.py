"""Sample user code: a FastAPI app with three routes and a WebSocket, deployed whole."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, WebSocket
from pydantic import BaseModel

import lepton


class Item(BaseModel):
    name: str
    price: float


@lepton.asgi(name="shop", max_scale=2)
def shop() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield {"greeting": "welcome"}  # startup: requests read it as request.state.greeting

    app = FastAPI(title="shop", lifespan=lifespan)

    @app.get("/")
    async def home(request: Request) -> dict:
        return {"greeting": request.state.greeting, "docs": request.url_for("openapi").path}

    @app.get("/items/{item_id}")
    def item(item_id: int, currency: str = "EUR") -> dict:
        return {"id": item_id, "currency": currency}

    @app.post("/items")
    def create(item: Item) -> dict:
        return {"created": item.name, "cents": round(item.price * 100)}

    @app.websocket("/ws")
    async def echo(socket: WebSocket) -> None:
        await socket.accept()
        async for text in socket.iter_text():
            await socket.send_text(f"echo: {text}")

    return app
