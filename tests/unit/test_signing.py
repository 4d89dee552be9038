"""Model signatures: a changed byte, a changed manifest field, another key or no signature at
all is refused; keys are read from hex, base64 or text and must be long enough; weak keys are
refused unless Redis is on this machine; older keys are accepted during a rotation."""

from __future__ import annotations

import json
import secrets

import pytest

from services.common.settings import ModelSigningSettings
from services.common.signing import (
    DEVELOPMENT_KEY,
    ModelKeys,
    SignatureError,
    check_key,
    is_local,
    parse_key,
    sign,
    verify,
)

KEY = bytes(range(32))
MANIFEST = json.dumps({"version": "ztf-0002", "survey": "ztf", "sha256": "ab" * 32})
DATA = b"onnx bytes" * 100


def test_a_signed_model_verifies() -> None:
    verify(KEY, MANIFEST, DATA, sign(KEY, MANIFEST, DATA), "ztf-0002")


@pytest.mark.parametrize(
    ("manifest", "data", "signature"),
    [
        (MANIFEST, DATA + b"!", sign(KEY, MANIFEST, DATA)),  # bytes swapped after signing
        (MANIFEST.replace("0002", "0003"), DATA, sign(KEY, MANIFEST, DATA)),  # renamed
        (MANIFEST, DATA, sign(secrets.token_bytes(32), MANIFEST, DATA)),  # another key
        (MANIFEST, DATA, "00" * 32),  # forged
        (MANIFEST, DATA, None),  # unsigned
        (MANIFEST, DATA, ""),
    ],
)
def test_anything_else_is_refused(manifest: str, data: bytes, signature: str | None) -> None:
    with pytest.raises(SignatureError):
        verify(KEY, manifest, data, signature, "ztf-0002")


def test_keys() -> None:
    assert parse_key(KEY.hex()) == KEY
    assert parse_key("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=") == KEY
    assert parse_key("a passphrase of more than thirty-two bytes") == (
        b"a passphrase of more than thirty-two bytes"
    )
    with pytest.raises(ValueError, match="at least 32 bytes"):
        parse_key("short")


def test_keys_rotate_and_weak_keys_are_refused_off_this_machine() -> None:
    old, new = ModelKeys(KEY), ModelKeys(secrets.token_bytes(32), (KEY,))
    digest = "cd" * 32
    signed_old = old.sign(MANIFEST, digest)
    assert new.verifying_key(MANIFEST, digest, signed_old, "v") == KEY  # accepted during rotation
    with pytest.raises(SignatureError):
        ModelKeys(new.signing).verify(MANIFEST, digest, signed_old, "v")  # and after it, not
    for weak in (DEVELOPMENT_KEY, "change-me-please-to-something-long!!", "0" * 64):
        with pytest.raises(ValueError, match="placeholder"):
            check_key(weak, local=False)
        assert check_key(weak, local=True)  # a laptop, a test, `ahunt up`
    assert is_local(None) and is_local("redis://u:p@localhost:6379/0")
    assert not is_local("rediss://ahunt-scorer:pw@redis:6379/0")


def test_settings_give_the_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    strong = secrets.token_hex(32)
    monkeypatch.setenv("AHUNT_MODEL_SIGNING_KEY", strong)
    monkeypatch.setenv("AHUNT_MODEL_VERIFY_KEYS", f"{KEY.hex()}, ")
    keys = ModelSigningSettings().model_keys("redis://redis:6379/0")
    assert keys == ModelKeys(bytes.fromhex(strong), (KEY,))
    assert strong not in repr(ModelSigningSettings())  # a SecretStr
    monkeypatch.delenv("AHUNT_MODEL_SIGNING_KEY")
    assert ModelSigningSettings().model_keys(None).signing == ModelKeys.development().signing
    with pytest.raises(ValueError, match="public development key"):
        ModelSigningSettings().model_keys("redis://redis:6379/0")
