"""`python -m app.server ...` is `seglens serve ...` (handy before the console script is reinstalled)."""

from __future__ import annotations

from app.server.cli import main

raise SystemExit(main())
