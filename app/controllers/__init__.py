"""Qt glue: owns views, wires signals, submits work to the worker pool."""
