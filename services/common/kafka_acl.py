"""Kafka identities and their rights: one SCRAM principal per user and per service, and the ACLs
that confine each to what it needs. Pure data first (who may do what), admin-API calls after.

Grants (all ALLOW; nothing else is allowed on a broker with an authorizer and
``allow.everyone.if.no.acl.found=false``):

====================  ===========================================================================
principal             rights
====================  ===========================================================================
``<user>``            READ topic ``ahunt.user.<user>`` (literal); READ groups prefixed
                      ``ahunt.user.<user>:`` (':' cannot occur in a user name, so no user's
                      prefix covers another user's groups)
``ahunt-scorer``      READ its input topics and its group; WRITE and CREATE topics prefixed
                      ``ahunt.user.`` and the dead-letter topic
``ahunt-feedback``    WRITE and CREATE ``ahunt.feedback``; READ topics prefixed ``ahunt.user.``
                      and groups prefixed ``ahunt-feedback`` (the live stream it relays per user)
retrain               none: it uses no Kafka
====================  ===========================================================================

DESCRIBE is implied by READ and WRITE on Apache Kafka, so it is never granted on its own.

Why the broker is probed before any CreateAcls: a broker without ACL support must not be sent
one. The bundled Tansu 0.6.0 answers CreateAcls with a malformed response that aborts librdkafka
(the client process dies); DeleteAcls, which it does not advertise, fails cleanly instead, and on
Apache Kafka a DeleteAcls that matches nothing changes nothing. See docs/SECURITY.md.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from services.common import topics
from services.common.topics import USER_TOPIC_PREFIX, user_topic

Operation = Literal["read", "write", "create", "describe"]
Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]

SERVICE_PRINCIPALS = {"scorer": "ahunt-scorer", "feedback": "ahunt-feedback"}
ADMIN_PRINCIPAL = "ahunt-admin"
# Service and admin principals share the user namespace: user names may not start with this.
RESERVED_PRINCIPAL_PREFIX = "ahunt-"
FEEDBACK_GROUP_PREFIX = "ahunt-feedback"
SCRAM_ITERATIONS = 8192
_OPERATIONS = {
    "read": AclOperation.READ,
    "write": AclOperation.WRITE,
    "create": AclOperation.CREATE,
    "describe": AclOperation.DESCRIBE,
}
_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP}
_PATTERNS = {"literal": ResourcePatternType.LITERAL, "prefixed": ResourcePatternType.PREFIXED}
# What implies DESCRIBE on Apache Kafka's authorizer (AclAuthorizer / StandardAuthorizer).
_IMPLIES_DESCRIBE = {"read", "write", "describe"}


class AclUnsupported(RuntimeError):
    """The broker stores no ACLs (no authorizer, or a broker without the ACL API)."""


@dataclass(frozen=True)
class Grant:
    principal: str  # the SCRAM user name, without "User:"
    operation: Operation
    resource: Resource
    name: str
    pattern: Pattern = "literal"

    def matches(self, resource: Resource, name: str) -> bool:
        if resource != self.resource:
            return False
        return name == self.name if self.pattern == "literal" else name.startswith(self.name)

    def binding(self) -> AclBinding:
        return AclBinding(
            _RESOURCES[self.resource],
            self.name,
            _PATTERNS[self.pattern],
            f"User:{self.principal}",
            "*",
            _OPERATIONS[self.operation],
            AclPermissionType.ALLOW,
        )


def user_group_prefix(user: str) -> str:
    """The consumer groups a user may use: ``ahunt.user.<user>:`` followed by anything.

    >>> user_group_prefix("alice")
    'ahunt.user.alice:'
    """
    return user_topic(user) + ":"


def user_grants(user: str) -> list[Grant]:
    return [
        Grant(user, "read", "topic", user_topic(user)),
        Grant(user, "read", "group", user_group_prefix(user), "prefixed"),
    ]


def service_grants(
    service: str,
    *,
    input_topics: Sequence[str] = (topics.ALERTS,),
    scorer_group: str = "ahunt-scorer",
    dead_letter_topic: str = topics.DEAD_LETTERS,
    feedback_topic: str = topics.FEEDBACK,
) -> list[Grant]:
    """The least rights of ``service`` (its principal from :data:`SERVICE_PRINCIPALS`)."""
    if service == "retrain":
        return []
    principal = SERVICE_PRINCIPALS[service]
    if service == "scorer":
        return [
            *(Grant(principal, "read", "topic", t) for t in input_topics),
            Grant(principal, "read", "group", scorer_group),
            Grant(principal, "write", "topic", USER_TOPIC_PREFIX, "prefixed"),
            Grant(principal, "create", "topic", USER_TOPIC_PREFIX, "prefixed"),
            Grant(principal, "write", "topic", dead_letter_topic),
            Grant(principal, "create", "topic", dead_letter_topic),
        ]
    if service == "feedback":
        return [
            Grant(principal, "write", "topic", feedback_topic),
            Grant(principal, "create", "topic", feedback_topic),
            Grant(principal, "read", "topic", USER_TOPIC_PREFIX, "prefixed"),
            Grant(principal, "read", "group", FEEDBACK_GROUP_PREFIX, "prefixed"),
        ]
    raise ValueError(f"unknown service {service!r}")


def allowed(
    grants: Iterable[Grant], principal: str, operation: Operation, resource: Resource, name: str
) -> bool:
    """Whether Apache Kafka's authorizer, holding exactly ``grants`` (all ALLOW, no
    allow-if-no-ACL), lets ``principal`` do ``operation`` on the resource."""
    for g in grants:
        if g.principal != principal or not g.matches(resource, name):
            continue
        implied = operation == "describe" and g.operation in _IMPLIES_DESCRIBE
        if g.operation == operation or implied:
            return True
    return False


# --- the admin API ------------------------------------------------------------------------------


def acl_support(admin: AdminClient, timeout_s: float = 10.0) -> bool:
    """True when the broker stores and enforces ACLs. Sends a DeleteAcls that matches nothing
    (never a CreateAcls: see the module docstring); raises on other errors, e.g. when this
    client's principal may not manage ACLs."""
    nothing = AclBindingFilter(
        ResourceType.TOPIC,
        f"ahunt.acl-probe.{uuid.uuid4().hex}",
        ResourcePatternType.LITERAL,
        "User:ahunt-acl-probe",
        "*",
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    try:
        for future in admin.delete_acls([nothing], request_timeout=timeout_s).values():
            future.result()
    except KafkaException as exc:
        if exc.args[0].code() in (KafkaError._UNSUPPORTED_FEATURE, KafkaError.SECURITY_DISABLED):
            return False
        raise
    return True


def _results(futures: Mapping[Any, Future[Any]]) -> None:
    for future in futures.values():
        future.result()


def set_scram_password(admin: AdminClient, principal: str, password: str) -> None:
    """Create or replace ``principal``'s SCRAM-SHA-512 credential (random salt)."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(principal, info, password.encode())
    _results(admin.alter_user_scram_credentials([upsert], request_timeout=30))


def delete_scram_credential(admin: AdminClient, principal: str) -> bool:
    """Remove the SCRAM-SHA-512 credential; False if there was none."""
    deletion = UserScramCredentialDeletion(principal, ScramMechanism.SCRAM_SHA_512)
    try:
        _results(admin.alter_user_scram_credentials([deletion], request_timeout=30))
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.RESOURCE_NOT_FOUND:
            return False
        raise
    return True


def create_acls(admin: AdminClient, grants: Sequence[Grant]) -> None:
    """CreateAcls for ``grants`` (idempotent on Apache Kafka). Call :func:`acl_support` first."""
    if grants:
        _results(admin.create_acls([g.binding() for g in grants], request_timeout=30))


def delete_acls_of(admin: AdminClient, principal: str) -> int:
    """Delete every ACL of ``principal``; the number deleted."""
    everything = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type]  # None matches any name (the stubs say str)
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type]
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    deleted = 0
    for future in admin.delete_acls([everything], request_timeout=30).values():
        deleted += len(future.result())
    return deleted


# --- a user's Kafka identity, issued and revoked with their API token ---------------------------


@dataclass(frozen=True)
class KafkaIdentity:
    topic: str
    password: str | None  # the SCRAM password, shown once; None when none was issued
    note: str  # what was done, for people


def issue_user(admin: AdminClient, ensure_topic: Callable[[str], None], user: str) -> KafkaIdentity:
    """Create the user's topic (brokers with auto-create off need it before the first delivery)
    and, where the broker enforces ACLs, a SCRAM credential and the user's grants."""
    topic = user_topic(user)
    ensure_topic(topic)
    if not acl_support(admin):
        return KafkaIdentity(
            topic,
            None,
            "no Kafka credential issued: this broker stores no ACLs, so it cannot keep users "
            "apart (the embedded broker authenticates nobody; see docs/SECURITY.md)",
        )
    password = secrets.token_urlsafe(24)
    set_scram_password(admin, user, password)
    create_acls(admin, user_grants(user))
    return KafkaIdentity(
        topic,
        password,
        f"SCRAM-SHA-512 principal {user!r}: read {topic}, groups {user_group_prefix(user)}*",
    )


def revoke_user_identity(admin: AdminClient, user: str) -> str:
    """Remove the user's SCRAM credential and ACLs (their topic stays: an operator may delete
    it); what was done, for people."""
    if not acl_support(admin):
        return "no Kafka credential to revoke (this broker stores no ACLs)"
    had = delete_scram_credential(admin, user)
    deleted = delete_acls_of(admin, user)
    return f"Kafka: {'credential removed' if had else 'no credential'}, {deleted} ACLs removed"
