"""The API's routes: ``/v1/...`` for users (token required), ``/healthz``, ``/readyz`` and
``/metrics`` for operators (open)."""
