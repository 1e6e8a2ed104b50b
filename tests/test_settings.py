"""User settings: typed, readable JSON in the config folder; a damaged file is kept aside, never lost."""

from __future__ import annotations

import json

import pytest

from app.core.storage.settings import MAX_RECENT, Settings, load_settings, save_settings


def test_round_trip_and_recent_lists(tmp_path) -> None:
    path = tmp_path / "settings.json"
    settings = Settings(opacity=0.7, scheme="categories")
    for i in range(MAX_RECENT + 3):
        settings.remember_dataset(f"/data/{i}")
    settings.remember_dataset("/data/5")  # re-opening moves it to the front, no duplicate
    save_settings(settings, path)
    loaded = load_settings(path)
    assert loaded == settings
    assert loaded.recent_datasets[0] == "/data/5" and len(loaded.recent_datasets) == MAX_RECENT
    assert json.loads(path.read_text())["version"] == 1


@pytest.mark.parametrize("text", ["{broken", "[1, 2]", '{"opacity": 7}', '{"recent_models": "x"}'])
def test_damaged_file_is_kept_aside(tmp_path, text) -> None:
    path = tmp_path / "settings.json"
    path.write_text(text)
    assert load_settings(path) == Settings()
    assert (tmp_path / "settings.json.bad").read_text() == text


def test_unknown_keys_are_ignored(tmp_path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 9, "opacity": 0.25, "future_option": True}))
    assert load_settings(path).opacity == 0.25


def test_view_choices_round_trip_and_old_modes_migrate(tmp_path) -> None:
    path = tmp_path / "settings.json"
    settings = Settings(display_mode="errors", panel_styles=["mask", "filled", "contours"], theme="dark")
    save_settings(settings, path)
    assert load_settings(path) == settings
    # Before per-panel styles, "contours" and "mask" were global modes: they become every panel's style.
    path.write_text(json.dumps({"display_mode": "mask", "opacity": 0.3}))
    old = load_settings(path)
    assert (old.display_mode, old.panel_styles, old.opacity) == ("classes", ["mask"] * 3, 0.3)
    # Unknown display values fall back to the defaults without discarding the rest of the file.
    odd_values = {"display_mode": "x", "panel_styles": ["filled"], "theme": "neon", "opacity": 0.4}
    path.write_text(json.dumps(odd_values))
    odd = load_settings(path)
    assert (odd.display_mode, odd.panel_styles, odd.theme) == ("classes", ["filled"] * 3, "system")
    assert odd.opacity == 0.4
    assert not (tmp_path / "settings.json.bad").exists()
