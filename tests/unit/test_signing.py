"""Model signatures: a changed byte, a changed manifest field, another key or no signature at
all is refused; keys are read from hex, base64 or text and must be long enough."""

from __future__ import annotations

import json
import secrets

import pytest

from services.common.signing import SignatureError, parse_key, sign, verify

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
