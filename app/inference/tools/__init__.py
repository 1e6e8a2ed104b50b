"""What is done to a model file: ONNX export (fidelity checked) and running native
models through it (acceleration)."""
