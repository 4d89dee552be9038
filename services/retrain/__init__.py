"""The retrain service: bootstrap a survey's first model, then periodically fine-tune on durable
labels, gate the candidate against the live version and publish it to the model registry.

Pure parts (no Redis, no registry): :mod:`dataset` (splits), :mod:`train` (device and epochs),
:mod:`gate`. I/O: :mod:`storage` (Redis layout), :mod:`loop` and :mod:`bootstrap` (wiring).
"""
