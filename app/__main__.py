"""`python -m app` runs the same entry point as the `seglens` command."""

from app.cli import main

raise SystemExit(main())
