"""The parts of alert decoding; :mod:`services.common.alerts` is the door everyone else uses.

- :mod:`.results`: what decoding gives (:class:`~.results.Alert`, :class:`~.results.Rejected`)
  and every rejection reason.
- :mod:`.schema_source`: Confluent schema ids -> writer schemas (a directory, a registry).
- :mod:`.projection`: Avro schema plumbing: named types, the projected reader schema.
- :mod:`.layout`: where a writer schema keeps an alert's fields, found by structure, not names.
- :mod:`.plans`: one cached plan per writer schema (layout + projection + compiled reader).
- :mod:`.framing`: Avro object containers and Confluent framing -> records.
- :mod:`.records`: one projected record -> an :class:`~.results.Alert` or a rejection.
- :mod:`.limits`: how much a packet may inflate to, and the one bounded-inflate helper.
"""
