"""`python -m app.core.scenes ...` is `seglens demo-data ...`."""

from __future__ import annotations

import sys

from app.core.scenes.generator import main

sys.exit(main())
