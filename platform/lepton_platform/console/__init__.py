"""The web console at `/ui/`: server-rendered pages over the platform's own operations, for
the holder of the admin token. `app.py` builds it; `history.py` is the last hour of
invocations that the platform's metrics keep for its charts."""
