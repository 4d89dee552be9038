"""The model registry: every published model version in Redis, one live pointer per survey.

Why Redis and not a compacted Kafka topic: a model is a few MB (Kafka refuses messages over ~1 MB
without broker-wide tuning, Redis takes a value up to 512 MB), Redis is already a dependency with
append-only persistence (``appendfsync always``), and what the registry needs is a compare-and-set
over several keys (status, pointer, history), which MULTI/EXEC under WATCH gives directly and a
log does not. Scorers on any host fetch the bytes from Redis, so no shared file system is needed.

Layout (key names: ``services.common.keys``): a set of surveys; per survey a sorted set of its
versions, one hash per version (onnx bytes, canonical manifest JSON, sha256, size, status,
reason, created_at, promoted_at), the live pointer, and the history of versions that went live
(oldest first; its last element is always the live one, rollback pops it); a pub/sub channel
with one JSON message per live change.

Every state change is one MULTI/EXEC transaction guarded by WATCH on the keys it read: a reader
sees the old live version or the new one, never a pointer to a version whose status disagrees. A
process that dies before EXEC changes nothing (Redis discards an unfinished transaction). The
announcement is published inside the same transaction, but it is only a hint: scorers also poll
:meth:`Registry.current`, so a missed message delays a swap by one poll interval, no more.

Modules: ``records`` (version names, statuses, the record of a version), ``lifecycle`` (the
:class:`Registry` and its transactions), ``cache`` (versions materialised on disk), ``cli``
(``ahunt models``).

Integrity: :meth:`publish` verifies the model directory (manifest + sha256) before uploading;
:meth:`fetch` re-hashes the bytes it read from Redis against the recorded sha256 and the
manifest's, and materialises the directory with an atomic rename, so a corrupted value can never
reach a scorer's session. Every version is signed by its publisher (``services.common.signing``:
HMAC over the manifest and the bytes' sha256); :meth:`promote`, :meth:`rollback` and
:meth:`fetch` refuse a version whose signature does not verify, so a version written or promoted
behind the registry's back (a hand-made Redis write) never reaches a session either.
"""

from services.common.registry.lifecycle import Registry, set_live_version_info
from services.common.registry.records import (
    ModelRecord,
    RegistryError,
    Status,
    parse_version,
    survey_of,
)

__all__ = [
    "ModelRecord",
    "Registry",
    "RegistryError",
    "Status",
    "parse_version",
    "set_live_version_info",
    "survey_of",
]
