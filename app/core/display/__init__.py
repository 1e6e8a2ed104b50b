"""What people look at: overlays and the rendering of masks, errors and outlines."""
