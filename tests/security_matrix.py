"""The Kafka authorization matrix: who may do what to which resource, written out by hand (not
computed from the grants, so the grants are checked against an independent statement).

Rows: resource type, name, operation; columns: principals (three users, the services). ``Y``
allows, ``.`` denies. The unit test evaluates the grants of ``services.common.kafka_acl`` under
Apache Kafka's ACL semantics; docs/SECURITY.md explains each row.
"""

from __future__ import annotations

from typing import cast

from services.common.kafka_acl import Operation, Resource

USERS = ("alice", "bob", "a.c")
PRINCIPALS = (*USERS, "ahunt-scorer", "ahunt-feedback", "retrain")

KAFKA_MATRIX = """
resource name                     operation alice bob a.c ahunt-scorer ahunt-feedback retrain
topic    ahunt.user.alice         read      Y     .   .   .            Y              .
topic    ahunt.user.alice         write     .     .   .   Y            .              .
topic    ahunt.user.alice         describe  Y     .   .   Y            Y              .
topic    ahunt.user.bob           read      .     Y   .   .            Y              .
topic    ahunt.user.bob           write     .     .   .   Y            .              .
topic    ahunt.user.bob           describe  .     Y   .   Y            Y              .
topic    ahunt.user.a.c           read      .     .   Y   .            Y              .
topic    ahunt.user.a.c           write     .     .   .   Y            .              .
topic    ahunt.user.a.c           describe  .     .   Y   Y            Y              .
topic    ahunt.user.newcomer      create    .     .   .   Y            .              .
group    ahunt.user.alice:laptop  read      Y     .   .   .            .              .
group    ahunt.user.alice:laptop  describe  Y     .   .   .            .              .
group    ahunt.user.bob:subscribe read      .     Y   .   .            .              .
group    ahunt.user.a.c:x         read      .     .   Y   .            .              .
group    ahunt.user.a:x           read      .     .   .   .            .              .
topic    ahunt.alerts             read      .     .   .   Y            .              .
topic    ahunt.alerts             write     .     .   .   .            .              .
topic    ahunt.alerts             describe  .     .   .   Y            .              .
group    ahunt-scorer             read      .     .   .   Y            .              .
topic    ahunt.dlq                write     .     .   .   Y            .              .
topic    ahunt.dlq                read      .     .   .   .            .              .
topic    ahunt.feedback           write     .     .   .   .            Y              .
topic    ahunt.feedback           read      .     .   .   .            .              .
topic    ahunt.feedback           describe  .     .   .   .            Y              .
group    ahunt-feedback.stream    read      .     .   .   .            Y              .
"""


def kafka_cells() -> list[tuple[str, Operation, Resource, str, bool]]:
    """(principal, operation, resource, name, allowed) for every cell of the matrix."""
    lines = [line.split() for line in KAFKA_MATRIX.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(header[3:]) == PRINCIPALS, header
    cells = []
    for resource, name, operation, *marks in rows:
        assert len(marks) == len(PRINCIPALS) and set(marks) <= {"Y", "."}, (name, marks)
        for principal, mark in zip(PRINCIPALS, marks, strict=True):
            cells.append(
                (principal, cast(Operation, operation), cast(Resource, resource), name, mark == "Y")
            )
    return cells
