"""``ahunt kafka-acls`` and ``ahunt redis-acls``: a deployment's setup job, creating the services'
identities and rights from the same data the code and tests use (``services.common.kafka_acl``,
``services.common.redis_acl``), never by hand.

    ahunt kafka-acls show                 the services' Kafka grants (no broker needed)
    ahunt kafka-acls apply                as ahunt-admin (KAFKA_SASL_*): the base topics, each
                                          service's SCRAM credential (AHUNT_SECRET_KAFKA_*) and
                                          ACLs through the admin API; idempotent
    ahunt redis-acls show                 the Redis users' rules (no passwords)
    ahunt redis-acls write FILE           an aclfile for ``redis-server --aclfile`` (hashes only)
    ahunt redis-acls apply                ACL SETUSER each user on REDIS_URL's Redis (as an
                                          admin), then ACL SAVE where the server has an aclfile
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from services.common import kafka_acl, redis_acl, topics
from services.common.settings import KafkaSettings, ServiceSecretsSettings, require_redis_url

SERVICES = ("scorer", "feedback")


def add_kafka_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    for name, text in (("show", "print the grants"), ("apply", "create credentials and ACLs")):
        action = actions.add_parser(name, help=text)
        action.add_argument(
            "--input-topic",
            dest="input_topics",
            action="append",
            help=f"the scorer's input topics (repeatable; default {topics.ALERTS})",
        )
        action.add_argument("--scorer-group", default="ahunt-scorer")


def _grants(args: argparse.Namespace) -> list[kafka_acl.Grant]:
    inputs = args.input_topics or [topics.ALERTS]
    return [
        g
        for service in SERVICES
        for g in kafka_acl.service_grants(
            service, input_topics=inputs, scorer_group=args.scorer_group
        )
    ]


def _describe(grant: kafka_acl.Grant) -> str:
    pattern = "*" if grant.pattern == "prefixed" else ""
    return f"{grant.principal:<16} {grant.operation:<9} {grant.resource} {grant.name}{pattern}"


def kafka_main(args: argparse.Namespace) -> int:
    grants = _grants(args)
    if args.action == "show":
        print("\n".join(_describe(g) for g in grants))
        return 0
    settings = KafkaSettings()
    if not settings.bootstrap_servers:
        print(
            "ahunt kafka-acls apply: set KAFKA_BOOTSTRAP_SERVERS (as ahunt-admin)", file=sys.stderr
        )
        return 2
    from confluent_kafka.admin import AdminClient

    from services.common.kafka import ensure_topics

    admin = AdminClient(settings.client_config(settings.bootstrap_servers))
    if not kafka_acl.acl_support(admin):
        print(
            "ahunt kafka-acls apply: this broker stores no ACLs (no authorizer, or the embedded "
            "broker): nothing done. Apache Kafka with StandardAuthorizer is needed "
            "(docs/SECURITY.md)",
            file=sys.stderr,
        )
        return 1
    inputs = args.input_topics or [topics.ALERTS]
    base = [*inputs, topics.DEAD_LETTERS, topics.FEEDBACK]
    ensure_topics(settings, settings.bootstrap_servers, base)
    print(f"topics: {', '.join(base)}")
    passwords = ServiceSecretsSettings().kafka_passwords()
    for service in SERVICES:
        principal = kafka_acl.SERVICE_PRINCIPALS[service]
        if service in passwords:
            kafka_acl.set_scram_password(admin, principal, passwords[service])
            print(f"{principal}: SCRAM-SHA-512 credential set")
        else:
            print(f"{principal}: no AHUNT_SECRET_KAFKA_{service.upper()}_PASSWORD, credential kept")
    kafka_acl.create_acls(admin, grants)
    print(f"{len(grants)} ACLs in place:")
    print("\n".join(_describe(g) for g in grants))
    return 0


def add_redis_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("show", help="print the users' rules (no passwords)")
    write = actions.add_parser("write", help="write an aclfile (AHUNT_SECRET_REDIS_* passwords)")
    write.add_argument("path", type=Path)
    apply = actions.add_parser("apply", help="ACL SETUSER each user on REDIS_URL's Redis")
    apply.add_argument(
        "--default-off",
        action="store_true",
        help="then turn the default user off (connect as ahunt-admin afterwards)",
    )


def redis_main(args: argparse.Namespace) -> int:
    if args.action == "show":
        for role in redis_acl.ROLES:
            print(f"{role.user}: {' '.join(role.rules('<sha256>')[4:])}  ({role.why})")
        return 0
    passwords = ServiceSecretsSettings().redis_passwords()
    missing = [r.user for r in redis_acl.ROLES if r.user not in passwords]
    if missing:
        names = ", ".join(
            f"AHUNT_SECRET_REDIS_{u.removeprefix('ahunt-').replace('-', '_').upper()}_PASSWORD"
            for u in missing
        )
        print(f"ahunt redis-acls {args.action}: set {names}", file=sys.stderr)
        return 2
    if args.action == "write":
        text = redis_acl.aclfile(passwords)
        fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"{args.path}: {len(redis_acl.ROLES)} users, the default user off")
        return 0
    return _apply(passwords, args.default_off)


def _apply(passwords: dict[str, str], default_off: bool) -> int:
    import redis

    from services.common import store

    url = require_redis_url("redis-acls apply", "an admin user of that Redis")
    client = store.connect(url)
    try:
        for role in redis_acl.ROLES:
            client.execute_command(
                "ACL",
                "SETUSER",
                role.user,
                *role.rules(redis_acl.password_sha256(passwords[role.user])),
            )
            print(f"{role.user}: set")
        if default_off:
            client.execute_command("ACL", "SETUSER", "default", "off")
            print("default user: off")
        try:
            client.execute_command("ACL", "SAVE")
            print("saved to the server's aclfile")
        except redis.ResponseError:
            print(
                "this Redis has no aclfile: the users live until it restarts (configure "
                "aclfile, or run this again after each restart: it is idempotent)"
            )
    except redis.RedisError as exc:
        print(f"ahunt redis-acls apply: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0
