"""Models behind one interface (base) and a registry; backends/ (one module per kind
of model), tools/ (ONNX export, acceleration)."""
