"""The retrain service: bootstrap a survey's first model, then periodically fine-tune on durable
labels, gate the candidate against the live version and publish it to the model registry.

The service skeleton: ``settings.py``, ``handler.py`` (pure: when to retrain), ``app.py`` (the
loop and its wiring), ``metrics.py``, ``cli.py`` (``ahunt retrain``, ``ahunt bootstrap``),
``__main__.py``. Its own job: ``dataset.py`` and ``gate.py`` (pure: the held-out split and the
promotion gate), ``train.py`` (the learner on the configured device), ``candidate.py`` (export,
gate, publish), ``bootstrap.py`` (version 1), ``storage.py`` (its Redis reads and writes).
"""
