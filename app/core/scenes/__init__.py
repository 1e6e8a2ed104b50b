"""Synthetic street scenes in the Cityscapes layout (`python -m app.core.scenes`, also
`seglens demo-data`) and the demo the window opens first."""
