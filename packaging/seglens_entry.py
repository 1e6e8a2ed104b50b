"""Entry script of the PyInstaller bundle: the same `main` as the `seglens` console script.

It lives outside app/ so that PyInstaller does not put app/ itself on the analysis path (which would make
`core`, `inference`... importable as top-level modules and bundle them twice).
"""

from app.cli import main

raise SystemExit(main())
