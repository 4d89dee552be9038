"""The Kafka and Redis authorization matrices: who may do what to which resource, written out by
hand (not computed from the grants, so the grants are checked against an independent statement).

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


# Redis: one ACL user per service role (services/common/redis_acl.py), checked on a real Redis by
# tests/integration/test_redis_acl.py, which runs each row's command as each user. A few Y cells
# are there only because Redis 6.2 has no read-only key patterns, so a role may write what it
# reads: feedback the tokens, cache and deliveries; retrain the labels, training copies, profiles
# and cache; the scorer the profiles (docs/SECURITY.md says why none of them reaches the registry).
REDIS_USERS = (
    "ahunt-admin",
    "ahunt-scorer",
    "ahunt-scorer-registry",
    "ahunt-feedback",
    "ahunt-retrain",
)
REDIS_MATRIX = """
action              admin scorer scorer-registry feedback retrain
registry.read       Y     .      Y               .        Y
registry.publish    Y     .      .               .        Y
registry.promote    Y     .      .               .        Y
registry.index      Y     .      .               .        Y
registry.surveys    Y     .      .               .        Y
registry.announce   Y     .      .               .        Y
registry.listen     Y     .      Y               .        .
labels.read         Y     .      .               Y        Y
labels.write        Y     .      .               Y        Y
training.write      Y     .      .               Y        Y
tokens.read         Y     .      .               Y        .
tokens.write        Y     .      .               Y        .
profiles.read       Y     Y      .               Y        Y
profiles.write      Y     Y      .               Y        Y
cache.write         Y     Y      .               Y        Y
deliveries.write    Y     Y      .               Y        .
sessions.write      Y     .      .               Y        .
outbox.write        Y     .      .               Y        .
bootstrap.write     Y     .      .               .        Y
learner.write       Y     .      .               .        Y
retrain.lock        Y     .      .               .        Y
keys.list           Y     .      .               .        .
config.get          Y     .      .               Y        .
config.set          Y     .      .               .        .
"""


def redis_cells() -> list[tuple[str, str, bool]]:
    """(user, action, allowed) for every cell of the Redis matrix."""
    lines = [line.split() for line in REDIS_MATRIX.strip().splitlines()]
    header, rows = lines[0], lines[1:]
    assert tuple(f"ahunt-{h}" for h in header[1:]) == REDIS_USERS, header
    cells = []
    for action, *marks in rows:
        assert len(marks) == len(REDIS_USERS) and set(marks) <= {"Y", "."}, (action, marks)
        cells.extend(
            (user, action, mark == "Y") for user, mark in zip(REDIS_USERS, marks, strict=True)
        )
    return cells
