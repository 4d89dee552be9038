"""``ahunt demo``: the whole product, live, on one machine, in a few minutes.

1. ``ahunt simulate`` writes N nights of ZTF-format alerts (and a few broken packets a night).
2. The stack starts as in ``ahunt up``: embedded broker and Redis, the scorer and the feedback API
   as child processes.
3. Two users sign up over the API with different tastes: ``alice`` hunts lensed arcs and finds
   satellite streaks boring; ``bob`` tracks satellites and finds cosmic rays boring.
4. Version 1 is bootstrapped from an unlabelled commissioning night (and the real ZTF sample
   alerts when present): one known class, "normal", plus the reserve.
5. Each night: the night's packets are replayed to ``ahunt.alerts`` (the real samples too on
   night 1); the scorer routes alerts to each user's topic within their budget; each simulated
   user (``ahunt oracle``) reads their topic and labels what they got over REST; the retrain
   service's code fine-tunes on every durable label, gates and promotes; the scorer hot-swaps.
6. A table per night, a discovery curve per user (AHUNT beside an isolation forest on pixels with
   the same budget) and a gallery of each user's top alerts are written to ``--out``.

Everything is real: the broker, Redis, the HTTP API and the model files. Only the users are
simulated, and they only ever see what arrives on their Kafka topic.

``ahunt demo --alerts DIR --labels FILE`` (``realsky``) runs the same steps on real alert packets
instead of the simulator: the earliest part of them, unlabelled, bootstraps version 1, the rest
is replayed in the order of the alerts' own time as K nights, and ``carol`` (hunts known
asteroids, dismisses bogus detections) and ``dave`` (hunts bogus detections) answer from the
labels file.

Modules: ``run`` (the steps above), ``realsky`` (real packets as the nights), ``oracle`` (a
simulated user, also ``ahunt oracle``), ``users`` (who the two users are), ``observe`` (what the
demo reads off the running stack), ``baseline`` (the isolation forest beside AHUNT), ``report``
(the table, curves, galleries), ``cli`` (``ahunt demo``).
"""
