"""Qt-free core, by role: domain (labels, metrics, edits, reviews, errors), display (overlays,
rendering), io (images, datasets, files, paths), storage (project, autosave, caches, settings), runtime
(memory, pipeline, arguments) and scenes (synthetic street scenes, the demo)."""
