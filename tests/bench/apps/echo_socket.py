"""A FastAPI app whose WebSocket echoes every message, for tests/bench/websocket.py."""

import lepton


@lepton.asgi(name="echo", min_scale=1, max_scale=1, concurrency=64)
def echo():
    from fastapi import FastAPI, WebSocket, WebSocketDisconnect

    app = FastAPI()

    @app.websocket("/ws")
    async def talk(socket: WebSocket) -> None:
        await socket.accept()
        try:
            while True:
                await socket.send_text(await socket.receive_text())
        except WebSocketDisconnect:
            pass

    return app
