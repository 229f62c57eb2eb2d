"""Web endpoints for the platform's request-path tests: a request handler and a FastAPI app
with a WebSocket."""

import lepton


@lepton.function(methods=["GET", "POST", "PUT"])
def echo(request: lepton.Request) -> dict:
    return {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "header": request.headers.get("x-probe"),
        "body": request.body.decode(),
    }


@lepton.function(methods=["GET"])
def hello(name: str = "world") -> str:
    return f"hello {name}"


@lepton.asgi(concurrency=2, max_scale=1)
def chat():
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()

    @app.get("/")
    def index() -> dict:
        return {"app": "chat"}

    @app.websocket("/ws")
    async def talk(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                await socket.send_text("echo: " + await socket.receive_text())
        except WebSocketDisconnect:
            pass

    return app
