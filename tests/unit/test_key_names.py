"""Redis key names cannot collide, whatever legal names users choose: a user's key never equals
or prefixes another key (another user's, another role's of the same user, or a shared one), and
each role's pattern (scans, ACL users) matches its own keys only. A user called ``revision`` once
owned ``ahunt:labels:revision``, the label revision counter, and broke every later label."""

from __future__ import annotations

from collections.abc import Callable
from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common import keys
from services.common.topics import USER_NAME
from tests.unit.test_redis_roles import every_key

SURVEYS = ("ztf", "rubin")
# Every way a key holds a user name: (role, key of a user, that role's pattern over all users).
USER_KEYS: tuple[tuple[str, Callable[[str], str], str], ...] = (
    ("delivered", keys.delivered_key, keys.delivered_key("*")),
    ("candidates", keys.candidates_key, keys.candidates_key("*")),
    ("labels", keys.labels_key, keys.labels_key("*")),
    *((f"spent:{s}", lambda u, s=s: keys.spent_key(s, u), keys.spent_key(s, "*")) for s in SURVEYS),
)
SHARED = [k for k in every_key() if not k.startswith("ahunt:user:")]
# The words of shared keys are the names most likely to collide (``revision`` did).
WORDS = sorted({w for k in SHARED for w in k.split(":") if USER_NAME.match(w)})
legal_users = st.one_of(st.sampled_from(WORDS), st.from_regex(USER_NAME, fullmatch=True))


def test_the_user_names_tried_include_every_word_of_a_shared_key() -> None:
    assert "revision" in WORDS and "outbox" in WORDS
    assert all(USER_NAME.match(w) for w in WORDS)


@settings(max_examples=300, deadline=None)
@given(user=legal_users, other=legal_users)
def test_no_user_key_equals_or_prefixes_another_key(user: str, other: str) -> None:
    owned = {(u, role): make(u) for u in (user, other) for role, make, _ in USER_KEYS}
    everything = {**owned, **{("", key): key for key in SHARED}}
    for owner, key in owned.items():
        for other_owner, other_key in everything.items():
            if other_owner == owner:
                continue
            assert other_key != key, f"{owner} and {other_owner} share the key {key!r}"
            assert not other_key.startswith(key), f"{key!r} prefixes {other_key!r}"
            assert not key.startswith(other_key), f"{other_key!r} prefixes {key!r}"


@settings(max_examples=300, deadline=None)
@given(user=legal_users)
def test_each_roles_pattern_matches_its_own_keys_only(user: str) -> None:
    for role, make, pattern in USER_KEYS:
        assert fnmatchcase(make(user), pattern)
        others = [m(user) for r, m, _ in USER_KEYS if r != role]
        assert not any(fnmatchcase(k, pattern) for k in [*others, *SHARED]), (role, user)
    for key in SHARED:  # shared patterns (alert_key("*")...) never reach a user's keys
        assert not any(fnmatchcase(make(user), key) for _, make, _ in USER_KEYS if "*" in key)
