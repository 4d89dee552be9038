"""Kafka message bytes -> :class:`Alert` values or :class:`Rejected` reasons. No I/O but schemas.

The scorer calls :func:`decode_message` on every message. Errors are values: each record of a
message becomes either an :class:`Alert` or a :class:`Rejected` with a stable ``reason`` (see
:data:`REJECT_REASONS`) for the dead-letter topic. Nothing that a message contains can make this
module raise; only a Schema Registry that cannot be reached does (:class:`SchemaRegistryError`),
because that is an infrastructure failure: the consumer must stop and replay, not dead-letter
every Rubin alert as "unknown schema". This module is the door; the parts (schema sources,
projection, layouts, plans, framing, records, bounded inflation) live in
:mod:`services.common.decoding`, one role each.

Framings (detected from the first bytes):

- ``Obj\\x01``: an Avro object container (ZTF, Fink re-published ZTF and Rubin, Rubin files);
  codecs null, deflate and snappy (snappy needs ``cramjam``); one result per record.
- ``\\x00`` + 4-byte big-endian schema id + schemaless Avro: Confluent wire format (Rubin). The
  writer schema comes from a :class:`SchemaSource`.

Which survey, and where its fields are, is read from the writer schema's *structure*, never its
name (:mod:`services.common.decoding.layout`): Spark's ``topLevelRecord``, ids kept only inside
``candidate``, reordered, pruned, extended or retyped fields and cutouts as plain bytes all
decode as the alerts they are. What an :class:`Alert` requires, and why:

- **ids** (ZTF ``candid`` and ``objectId``; Rubin ``diaSourceId``/``alertId``): dead letters,
  user topics and labels are keyed by them. Rubin's object id is optional (``""``): a source not
  yet associated with any object is still an alert.
- **position** (ra, dec) and **time** (ZTF ``jd``, Rubin ``midpointMjdTai``): every ZTF and Rubin
  schema declares them non-null. The budget clock runs on event time, and a record without one
  would be clocked by the wall instead, mixing two clocks in one night; cone filters need the
  position. A record without them is a damaged record, not an alert with less in it.
- **magnitude**: ZTF's ``magpsf`` is required (a non-null field of every ZTF candidate). Rubin's
  ``psfFlux`` is optional: it is nullable and a difference flux may be negative, which has no
  magnitude; such an alert passes no magnitude cut (the scorer's filters treat None so).
- **the three cutouts**: the model sees nothing else.

A schema that lacks a required field (or holds it in a type that cannot carry it, such as a
double id) is refused whole with ``missing_field`` naming each one (``candidate.jd``,
``cutoutTemplate``); a record where one is null is refused alone, naming it the same way.
``unknown_survey`` is left for schemas that look like no alert at all.

Values are checked at decode time, so that nothing downstream meets one no sky can hold
(``candidate.jd = 1e300`` used to pass here and then fail the Avro encoding of the scorer's whole
output batch): finite, ra in [0, 360), dec in [-90, 90], the time within the survey's years,
a magnitude in [-30, 40]; anything else is ``out_of_range`` naming the field and the value
(bounds and reasons in :mod:`services.common.decoding.records`). Decompression is bounded per
stamp (bytes and pixels) and per message (everything its blocks and stamps inflate to, against
what a real packet of its size holds): ``too_large``, ``too_many_pixels``, ``message_too_large``
(:mod:`services.common.decoding.limits`).

Why a hand-written container reader instead of ``fastavro.reader``: fastavro re-parses the
writer schema embedded in every message (10-26 KB of JSON), and decodes all of the 30-day history
we never use. Here the schema is parsed once per distinct writer schema, together with a
*projected* reader schema that keeps only the fields an :class:`Alert` needs (the paths the
layout found); cavro (or fastavro, for schemas cavro refuses) then skips the rest without
building Python objects for it. Measured on the real samples (2-core dev box under load,
records/s, Avro only): single-record ZTF messages 4,700 vs
1,600 for a full ``fastavro.reader`` and 1,100 when the projection is rebuilt per message; all
165 ZTF/Fink records 2,300 vs 1,000. Skipping ``prv_candidates``/``fp_hists`` is still ~75% of
what is left. With the three stamps decoded: ~2,400 single-record ZTF alerts/s (a full decode
with astropy stamps does ~380). Fink's Rubin deep-drilling alerts (~350 prvDiaSources and ~400
forced sources each) decode at only ~120/s (56 in full): history-heavy Rubin traffic needs
several decoding processes. Structural detection costs nothing per record (it runs once per
writer schema): see docs/PERFORMANCE.md, "Decoding", for the figures before and after.

A structurally broken message (cut short, bad sync marker, bad block CRC, records that overrun
their block) is rejected *whole*, as one :class:`Rejected` with ``index=None``: Kafka checksums
its messages, so such a payload means a broken producer, and salvaging half of it would hide that.
A record that decodes but fails its own checks (no cutout, bad stamp, no id) is rejected alone.
"""

from __future__ import annotations

from services.common.cutouts import sniff_format
from services.common.decoding.framing import CONTAINER_MAGIC, confluent_record, container_records
from services.common.decoding.limits import InflationBudget, MessageTooLarge, message_budget
from services.common.decoding.projection import project_schema
from services.common.decoding.records import to_alert
from services.common.decoding.results import (
    REJECT_REASONS,
    Alert,
    BrokenMessage,
    Rejected,
    Survey,
)
from services.common.decoding.schema_source import (
    BadSchemaError,
    SchemaRegistryError,
    SchemaSource,
)

__all__ = [
    "REJECT_REASONS",
    "Alert",
    "BadSchemaError",
    "Rejected",
    "SchemaRegistryError",
    "SchemaSource",
    "Survey",
    "decode_message",
    "project_schema",
]


def decode_message(payload: bytes, schemas: SchemaSource | None = None) -> list[Alert | Rejected]:
    """Decode one Kafka message into one result per record, never raising on bad data.

    Raises only :class:`SchemaRegistryError` (the registry is unreachable: retry the message).

    >>> decode_message(b"")
    [Rejected(reason='empty_message', message='payload is 0 bytes', index=None, alert_id=None)]
    >>> decode_message(b"\\xff\\xd8\\xff\\xe0 not an alert")[0].message
    'payload starts with ffd8ffe0206e6f7420616e20616c6572 (JPEG image)'
    """
    try:
        payload = bytes(payload)
        budget = InflationBudget(message_budget(len(payload)))
        if not payload:
            raise BrokenMessage("empty_message", "payload is 0 bytes")
        if len(payload) < len(CONTAINER_MAGIC) and CONTAINER_MAGIC.startswith(payload):
            raise BrokenMessage("truncated", f"payload is {payload!r}, a cut-off container magic")
        if payload.startswith(CONTAINER_MAGIC):
            plan, records = container_records(payload, budget)
            id_version = None
        elif payload[0] == 0:
            plan, record, schema_id = confluent_record(payload, schemas)
            records = [record]
            major, minor = divmod(schema_id, 100)
            id_version = f"{major}.{minor}"
        else:
            raise BrokenMessage(
                "bad_magic",
                f"payload starts with {payload[:16].hex()} ({sniff_format(payload)})",
            )
        survey = plan.survey
        if survey is None:  # the framers already refuse these; this narrows the type
            raise BrokenMessage("unknown_survey", f"writer schema {plan.name or '?'}")
        return [
            to_alert(record, survey, plan, index, id_version, budget)
            for index, record in enumerate(records)
        ]
    except BrokenMessage as broken:
        return [Rejected(broken.reason, broken.message)]
    except MessageTooLarge as exc:  # a gzip or deflate bomb spread over the message
        return [Rejected("message_too_large", str(exc))]
    except SchemaRegistryError:
        raise
    except Exception as exc:  # the boundary promise: data never crashes the consumer
        return [Rejected("corrupt_avro", f"unexpected {type(exc).__name__}: {exc}")]
