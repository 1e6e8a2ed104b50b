"""The one evaluation service: a request (dataset, models, scheme, ground truth, cache policy, engine) in,
typed frozen results out. Every command and the window evaluate through it (see service.py)."""
