"""Model signatures: the publisher (retrain, or an operator) signs a model's manifest and bytes,
and a scorer refuses a model whose signature does not verify, whoever wrote it into the registry.

HMAC-SHA256 with a key shared by publishers and scorers (``AHUNT_MODEL_SIGNING_KEY``, at least
32 bytes, hex or base64 or raw text). The signed message binds the manifest (canonical JSON, so
the version, survey, classes and preprocessing cannot be swapped) to the sha256 of the exact
model bytes. Why HMAC and not Ed25519: the standard library has it, and the registry's Redis ACLs
already keep scorers (which hold the key) from writing models; the cost is that a stolen scorer
key can sign. docs/SECURITY.md states this and how to rotate the key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac

SIGNATURE_FILE = "signature"
_CONTEXT = b"ahunt-model-signature-v1\n"
MIN_KEY_BYTES = 32


class SignatureError(ValueError):
    """A model is unsigned, or its signature does not verify with the scorer's key."""


def parse_key(text: str) -> bytes:
    """The key from its setting: hex (64+ digits), base64, or the text's UTF-8 bytes.

    >>> len(parse_key("00" * 32))
    32
    """
    text = text.strip()
    candidates: list[bytes] = []
    with contextlib.suppress(ValueError):
        candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text, validate=True))
    candidates.append(text.encode())
    key = next((c for c in candidates if len(c) >= MIN_KEY_BYTES), b"")
    if not key:
        raise ValueError(
            f"the model signing key must hold at least {MIN_KEY_BYTES} bytes "
            "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return key


def _message(manifest_json: str, model_sha256: str) -> bytes:
    return _CONTEXT + manifest_json.encode() + b"\n" + model_sha256.encode()


def sign(key: bytes, manifest_json: str, data: bytes) -> str:
    """Hex HMAC-SHA256 over the manifest and the sha256 of ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    return hmac.new(key, _message(manifest_json, digest), hashlib.sha256).hexdigest()


def verify(key: bytes, manifest_json: str, data: bytes, signature: str | None, what: str) -> None:
    """Raise :class:`SignatureError` unless ``signature`` signs this manifest and these bytes."""
    if not signature:
        raise SignatureError(f"{what}: unsigned model refused (publish it with the signing key)")
    expected = sign(key, manifest_json, data)
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureError(f"{what}: signature does not verify with this key: refused")
