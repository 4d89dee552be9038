"""The scorer: Kafka alerts in, per-user topics out (docs/ARCHITECTURE.md, "The path of an alert").

The service skeleton: ``settings.py``, ``handler.py`` (pure: scores, filters, deliveries),
``app.py`` (the loop's handler and its wiring), ``metrics.py``, ``cli.py``, ``__main__.py``. Its
own job: ``model.py`` (a loaded model, the slot it is swapped in), ``selection.py`` (budgets,
pure), ``clock.py`` (the budget clock in event time, pure), ``budgets.py`` (budgets' spending in
Redis), ``records.py`` (what it writes, pure), ``watcher.py`` (model hot swap), ``warmup.py``
(the real stamps a model is checked on before it serves).
"""
