"""The real `seglens` window process: what it writes before it ends when the system asks it to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.core.scenes.generator import generate

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _wait_for(condition, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the window process ended early: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out: {proc.communicate()}")
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_terminated_window_saves_recents_and_layout_and_exits_cleanly(tmp_path: Path, sig) -> None:
    data = generate(tmp_path / "data", 2, size=(64, 128), seed=3)
    config = tmp_path / "config"
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": "offscreen",
        "SEGLENS_CONFIG": str(config),
        "SEGLENS_CACHE": str(tmp_path / "cache"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", str(data)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    settings = config / "settings.json"
    # The recent-datasets list is written as soon as the dataset opened, not only when the window closes.
    _wait_for(lambda: settings.is_file() and str(data) in settings.read_text(), 60, proc)
    proc.send_signal(sig)
    try:
        _out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, err
    assert json.loads(settings.read_text())["recent_datasets"][0] == str(data)
    assert "geometry" in (config / "window.ini").read_text()  # the window layout
