"""`seglens serve`: the SegLens REST API (DESIGN.md "Hosted models").

    main(argv)                the command (wired as `seglens serve` by app.cli)
    app.server.app.create_app(models, ...)  the FastAPI app, for tests and embedding

FastAPI and uvicorn (the `server` extra) are imported only when the app is built or run, so importing
this package, or parsing `seglens serve` arguments, needs neither.
"""

from __future__ import annotations

from app.server.cli import main

__all__ = ["main"]
