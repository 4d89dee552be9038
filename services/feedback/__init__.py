"""The feedback API (issue 4): users label alerts and tune their interest over HTTP.

``settings.py`` (typed, env ``AHUNT_FEEDBACK_``), ``handler.py`` (pure decisions),
``api_models.py`` (request/response bodies), ``storage.py`` (asyncio Redis in the shared layout)
over ``batching.py`` (group commit), ``events.py`` (outbox -> Kafka ``ahunt.feedback``),
``auth.py`` + ``tokens.py`` (bearer tokens stored as hashes), ``ratelimit.py``,
``middleware.py`` + ``metrics.py``, ``routes/``, ``app.py`` (``create_app``), ``serve.py``
(uvicorn, standalone or in a thread), ``cli.py``. README.md says how it behaves and why.
"""
