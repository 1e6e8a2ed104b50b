"""Qt-free domain: labels, datasets, image I/O, metrics, overlays, synthetic data."""
