"""Model tools that evaluate through the evaluation service: INT8 quantization (calibrated,
validated, searched) and benchmarks (latency, throughput, memory, accuracy on one scheme)."""
