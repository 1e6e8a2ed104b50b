"""What SegLens persists: the project (edits, reviews), autosave, gtFine export, the
prediction cache on disk, settings."""
