"""SegLens: compare semantic-segmentation models image by image and pixel by pixel."""

__version__ = "0.1.0"
