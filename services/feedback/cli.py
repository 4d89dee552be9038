"""``ahunt feedback`` (the API) and ``ahunt users add|list|revoke`` (identity), registered in
``services.cli``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from services.common.settings import require_redis_url
from services.feedback.settings import FeedbackSettings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="overrides AHUNT_FEEDBACK_HOST (127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="overrides AHUNT_FEEDBACK_PORT (8080)")
    p.add_argument("--workers", type=int, default=None, help="overrides AHUNT_FEEDBACK_WORKERS")
    p.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME",
        help="create this user at startup if missing and print its token (repeatable; handy "
        "with the embedded Redis)",
    )


def main(args: argparse.Namespace) -> int:
    from services.feedback.serve import run

    overrides = {k: getattr(args, k) for k in ("host", "port", "workers")}
    settings = FeedbackSettings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        return run(settings, users=args.user)
    except KeyboardInterrupt:  # Ctrl-C: embedded servers are stopped on the way out
        return 0


def add_users_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="users_action", required=True)
    add = actions.add_parser("add", help="create a user (default profile) and print its token once")
    add.add_argument("name")
    add.add_argument(
        "--rotate", action="store_true", help="existing user: revoke old tokens, print a new one"
    )
    actions.add_parser("list", help="users and their number of live tokens")
    revoke = actions.add_parser("revoke", help="revoke every token of a user")
    revoke.add_argument("name")
    revoke.add_argument(
        "--remove-profile",
        action="store_true",
        help="also stop routing alerts to them (labels are kept)",
    )


def _kafka_admin() -> tuple[Any, Callable[[str], None]] | None:
    """The admin client and a topic creator, when ``KAFKA_BOOTSTRAP_SERVERS`` is set."""
    from confluent_kafka.admin import AdminClient

    from services.common.kafka import ensure_topics
    from services.common.settings import KafkaSettings

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        return None
    bootstrap = kafka.bootstrap_servers
    admin = AdminClient(kafka.client_config(bootstrap))
    return admin, lambda topic: ensure_topics(kafka, bootstrap, [topic])


def users_main(args: argparse.Namespace) -> int:
    from services.common import kafka_acl, store
    from services.feedback import tokens

    url = require_redis_url("users", "the feedback API's Redis (`ahunt feedback` prints it)")
    client = store.connect(url)
    kafka = _kafka_admin()
    if args.users_action == "add":
        try:
            token = tokens.add_user(client, args.name, rotate=args.rotate)
        except ValueError as exc:
            raise SystemExit(str(exc)) from None
        print(f"user {args.name}: token (shown once, keep it) {token}")
        if kafka is None:
            print("Kafka: KAFKA_BOOTSTRAP_SERVERS not set: topic and credential not created")
        else:  # a rotation also replaces the Kafka password
            identity = kafka_acl.issue_user(*kafka, args.name)
            print(f"Kafka: topic {identity.topic}; {identity.note}")
            if identity.password is not None:
                print(f"Kafka: password (shown once, keep it) {identity.password}")
    elif args.users_action == "list":
        for name, n in tokens.list_users(client):
            print(f"{name}\t{n} token{'s' if n != 1 else ''}")
    else:
        n = tokens.revoke_user(client, args.name, remove_profile=args.remove_profile)
        print(
            f"user {args.name}: {n} token{'s' if n != 1 else ''} revoked"
            + (", profile removed" if args.remove_profile else "")
        )
        if kafka is not None:
            print(kafka_acl.revoke_user_identity(kafka[0], args.name))
    return 0
