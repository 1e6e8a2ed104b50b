"""The vocabulary of the app, depending on nothing else in it: label schemes, metrics,
label editing, rasterization, reviews, errors."""
