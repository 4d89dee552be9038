"""Every operator command that works on the stack's Redis refuses to run without one, in one
wording (``services.common.settings.require_redis_url``), and exits 2: it never starts an
embedded Redis, which would hold none of the stack's data."""

from __future__ import annotations

import pytest

from services.cli import main


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["users", "add", "alice"], False),
        (["models", "list"], True),
        (["retrain", "--now"], True),
        (["dlq", "get", "0" * 64], False),
        (["redis-acls", "apply"], False),
        (["redis", "migrate"], False),
    ],
)
def test_without_redis_url_the_command_says_so_and_exits_2(
    argv: list[str],
    option: bool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    for role in ("ADMIN", "SCORER", "SCORER_REGISTRY", "FEEDBACK", "RETRAIN"):  # redis-acls
        monkeypatch.setenv(f"AHUNT_SECRET_REDIS_{role}_PASSWORD", "a-password-of-24-chars-x")
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ahunt {argv[0]}") and "set REDIS_URL" in err
    assert ("or pass --redis-url" in err) == option
