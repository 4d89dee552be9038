"""The Kafka grants: the matrix in tests/security_matrix.py, evaluated under Apache Kafka's ACL
semantics, and the names that would make one user's rights cover another's."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from services.common.kafka_acl import (
    SERVICE_PRINCIPALS,
    Grant,
    allowed,
    service_grants,
    user_grants,
)
from services.common.users import check_new_user, collision_key
from tests.security_matrix import USERS, kafka_cells


def all_grants() -> list[Grant]:
    grants = [g for u in USERS for g in user_grants(u)]
    return grants + [g for s in ("scorer", "feedback", "retrain") for g in service_grants(s)]


def test_matrix_of_users_and_services() -> None:
    grants = all_grants()
    wrong = [
        (principal, op, resource, name, expected)
        for principal, op, resource, name, expected in kafka_cells()
        if allowed(grants, principal, op, resource, name) != expected
    ]
    assert not wrong, wrong


def test_matrix_covers_every_principal_and_operation() -> None:
    cells = kafka_cells()
    assert {c[0] for c in cells} == {*USERS, *SERVICE_PRINCIPALS.values(), "retrain"}
    assert {c[1] for c in cells} == {"read", "write", "describe", "create"}
    assert len(cells) >= 3 * 6 * 3


def test_retrain_has_no_kafka_rights() -> None:
    assert service_grants("retrain") == []


def test_grants_become_allow_bindings_for_the_principal() -> None:
    read_topic, read_groups = (g.binding() for g in user_grants("alice"))
    assert read_topic.restype == ResourceType.TOPIC and read_topic.name == "ahunt.user.alice"
    assert read_topic.resource_pattern_type == ResourcePatternType.LITERAL
    assert read_topic.principal == "User:alice" and read_topic.host == "*"
    assert read_topic.operation == AclOperation.READ
    assert read_topic.permission_type == AclPermissionType.ALLOW
    assert read_groups.restype == ResourceType.GROUP
    assert read_groups.resource_pattern_type == ResourcePatternType.PREFIXED
    assert read_groups.name == "ahunt.user.alice:"


@pytest.mark.parametrize(
    ("new", "existing", "refused_because"),
    [
        ("a_b", {"a.b"}, "collide"),
        ("a.b", {"a_b"}, "collide"),
        ("x.y_z", {"x_y.z"}, "collide"),
        ("alice", {"alice"}, "exists"),
        ("ahunt-scorer", set(), "reserved"),
        ("ahunt-admin", set(), "reserved"),
        ("Alice", set(), "invalid"),
        ("a:b", set(), "invalid"),
        ("", set(), "invalid"),
    ],
)
def test_colliding_reserved_and_invalid_names_are_refused(
    new: str, existing: set[str], refused_because: str
) -> None:
    with pytest.raises(ValueError, match=refused_because):
        check_new_user(new, existing)


def test_distinct_names_are_accepted() -> None:
    check_new_user("a.b", {"a", "ab", "a-b", "b.a"})
    assert collision_key("a-b") != collision_key("a_b")
