"""Every Kafka topic name of the project, from this module only.

- ``ahunt.alerts``        survey alert packets in (the scorer's default input)
- ``ahunt.dlq``           dead letters: poison inputs as envelopes with their reason
- ``ahunt.feedback``      feedback events (labels and undos), from the feedback API's outbox
- ``ahunt.user.<name>``   each user's chosen alerts (:func:`user_topic`)
"""

from __future__ import annotations

import re

ALERTS = "ahunt.alerts"
DEAD_LETTERS = "ahunt.dlq"
FEEDBACK = "ahunt.feedback"
USER_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
USER_TOPIC_PREFIX = "ahunt.user."  # ACLs grant on this prefix (services.common.kafka_acl)


def user_topic(user: str) -> str:
    """The Kafka topic of a user's chosen alerts (the user name is validated here).

    >>> user_topic("alice")
    'ahunt.user.alice'
    """
    if not USER_NAME.match(user):
        raise ValueError(f"invalid user name {user!r}: lower-case letters, digits, '_', '.', '-'")
    return USER_TOPIC_PREFIX + user
