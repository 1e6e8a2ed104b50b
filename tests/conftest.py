"""Shared test configuration: Qt offscreen, no network, and a guard against dangling worker threads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# tests/modelzoo.py and friends are imported as plain modules.
sys.path.insert(0, str(Path(__file__).parent))

from qt_fixtures import dangling_workers  # noqa: F401  (autouse guard for every test)
