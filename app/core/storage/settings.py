"""User settings: a typed model saved as readable JSON in the user config folder (never beside the app)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app.core.display.render import CONTENTS, STYLES
from app.core.io.fileutil import atomic_write_text
from app.core.io.paths import config_dir

_log = logging.getLogger(__name__)
MAX_RECENT = 8
VERSION = 1
THEMES = ("system", "light", "dark")


@dataclass
class Settings:
    """What SegLens remembers between sessions (window geometry lives in QSettings)."""

    opacity: float = 0.5
    scheme: str = "trainids"
    display_mode: str = "classes"  # what the masks show: one of render.CONTENTS
    panel_styles: list[str] = field(default_factory=lambda: ["filled"] * 3)  # GT, A, B: render.STYLES
    show_gt: bool = False
    theme: str = "system"
    recent_datasets: list[str] = field(default_factory=list)
    recent_models: list[str] = field(default_factory=list)
    ray_address: str = ""  # evaluations on a Ray cluster: "" this process, "local", or an address

    def remember_dataset(self, path: str | Path) -> None:
        self.recent_datasets = _push(self.recent_datasets, str(path))

    def remember_model(self, path: str | Path) -> None:
        self.recent_models = _push(self.recent_models, str(path))


def _push(items: list[str], value: str) -> list[str]:
    return [value, *(v for v in items if v != value)][:MAX_RECENT]


def settings_path() -> Path:
    return config_dir() / "settings.json"


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings; a damaged file is kept aside as settings.json.bad (never lost) and defaults used."""
    source = path or settings_path()
    if not source.exists():
        return Settings()
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        known = {f.name for f in fields(Settings)}
        settings = Settings(**{k: v for k, v in data.items() if k in known})
        _validate(settings)
        _migrate_view(settings)
        return settings
    except (OSError, ValueError, TypeError) as exc:
        backup = source.with_suffix(".json.bad")
        _log.warning("%s: unreadable settings (%s); kept as %s, using defaults", source, exc, backup.name)
        source.replace(backup)
        return Settings()


def _validate(settings: Settings) -> None:
    if not isinstance(settings.ray_address, str):
        raise ValueError("ray_address must be a string")
    if not 0.0 <= float(settings.opacity) <= 1.0:
        raise ValueError(f"opacity {settings.opacity} is not in 0..1")
    for name in ("recent_datasets", "recent_models"):
        value = getattr(settings, name)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{name} must be a list of paths")


def _migrate_view(settings: Settings) -> None:
    """Display choices from older versions or unknown values fall back gently (they are not worth the
    whole file): the former global modes "contours" and "mask" become the style of every panel."""
    if settings.display_mode in STYLES[1:]:
        settings.panel_styles = [settings.display_mode] * 3
    if settings.display_mode not in CONTENTS:
        settings.display_mode = "classes"
    styles = settings.panel_styles
    if not isinstance(styles, list) or len(styles) != 3 or any(s not in STYLES for s in styles):
        settings.panel_styles = ["filled"] * 3
    if not isinstance(settings.show_gt, bool):
        settings.show_gt = False
    if settings.theme not in THEMES:
        settings.theme = "system"


def save_settings(settings: Settings, path: Path | None = None) -> None:
    """Write atomically, with a version key for future migrations."""
    atomic_write_text(path or settings_path(), json.dumps({"version": VERSION, **asdict(settings)}, indent=2))
