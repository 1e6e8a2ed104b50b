"""User settings: typed, readable JSON in the config folder; a damaged file is kept aside, never lost."""

from __future__ import annotations

import json

import pytest

from app.core.settings import MAX_RECENT, Settings, load_settings, save_settings


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
