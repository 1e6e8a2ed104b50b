"""One module per kind of model (ONNX Runtime, Keras, Hugging Face, hosted REST
and Open Inference Protocol v2), opened by the registry by name."""
