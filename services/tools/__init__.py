"""Tools around the services, not services themselves: they run on demand and own no state.

``replay`` and ``subscribe`` (alert files in, a user's topic out), ``kafka`` (the embedded
broker), ``stack`` (``ahunt up``: the whole stack on one machine), ``simulator`` (``ahunt
simulate``: a ZTF survey with known classes), ``demo`` (``ahunt demo`` and ``ahunt oracle``, a
simulated user). Tools may import the services; no service imports a tool
(tests/unit/test_architecture.py).
"""
