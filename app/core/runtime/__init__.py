"""The running process: memory release, the decode/infer pipeline, in-memory LRU,
argument types."""
