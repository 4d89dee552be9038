"""Model signatures: the publisher (retrain, or an operator) signs a model's manifest and bytes,
and a scorer refuses a model whose signature does not verify, whoever wrote it into the registry.

HMAC-SHA256 with a key shared by publishers and scorers (``AHUNT_MODEL_SIGNING_KEY``, at least
32 bytes, hex or base64 or raw text; ``AHUNT_MODEL_VERIFY_KEYS`` adds keys whose signatures are
still accepted while a key is rotated). The signed message binds the manifest (canonical JSON, so
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
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

_CONTEXT = b"ahunt-model-signature-v1\n"
MIN_KEY_BYTES = 32
# Used when no key is configured: public (it is in this file), so accepted only where Redis is
# on this machine (a laptop, a test, the embedded stack); ``ahunt up`` generates a real key.
DEVELOPMENT_KEY = "ahunt-development-model-signing-key (public: laptops and tests only)"
# Values that are obviously not a secret: a template's placeholder left in place.
_PLACEHOLDER = re.compile(r"change[-_ ]?me|replace|placeholder|example|secret|xxxx|todo", re.I)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1", ""})


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


def is_local(redis_url: str | None) -> bool:
    """Whether Redis is on this machine (unset = the embedded one): the only place the public
    development key, or a placeholder, is accepted.

    >>> is_local(None), is_local("redis://127.0.0.1:6379/0"), is_local("rediss://redis.prod:6380")
    (True, True, False)
    """
    if not redis_url:
        return True
    parts = urlsplit(redis_url)
    return parts.scheme == "unix" or (parts.hostname or "") in _LOOPBACK


def check_key(text: str, local: bool, what: str = "AHUNT_MODEL_SIGNING_KEY") -> bytes:
    """:func:`parse_key`, refusing the development key and placeholders unless ``local``."""
    key = parse_key(text)
    weak = text.strip() == DEVELOPMENT_KEY or bool(_PLACEHOLDER.search(text)) or len(set(key)) < 8
    if weak and not local:
        raise ValueError(
            f"{what} is a placeholder or the public development key, refused with a Redis that "
            "is not on this machine: set a random key (`python -c 'import secrets; "
            "print(secrets.token_hex(32))'`) in every publisher and scorer"
        )
    return key


def _message(manifest_json: str, model_sha256: str) -> bytes:
    return _CONTEXT + manifest_json.encode() + b"\n" + model_sha256.encode()


def sign_digest(key: bytes, manifest_json: str, model_sha256: str) -> str:
    """Hex HMAC-SHA256 over the manifest and the model bytes' sha256 (hex)."""
    return hmac.new(key, _message(manifest_json, model_sha256), hashlib.sha256).hexdigest()


def sign(key: bytes, manifest_json: str, data: bytes) -> str:
    """Hex HMAC-SHA256 over the manifest and the sha256 of ``data``."""
    return sign_digest(key, manifest_json, hashlib.sha256(data).hexdigest())


def verify(key: bytes, manifest_json: str, data: bytes, signature: str | None, what: str) -> None:
    """Raise :class:`SignatureError` unless ``signature`` signs this manifest and these bytes."""
    ModelKeys(key).verify(manifest_json, hashlib.sha256(data).hexdigest(), signature, what)


@dataclass(frozen=True)
class ModelKeys:
    """The key this process signs with and every key whose signatures it accepts (the signing
    key first, then older or newer keys during a rotation)."""

    signing: bytes
    also_accepted: tuple[bytes, ...] = ()

    @classmethod
    def development(cls) -> ModelKeys:
        return cls(parse_key(DEVELOPMENT_KEY))

    @classmethod
    def from_texts(
        cls, signing: str | None, accepted: Iterable[str], redis_url: str | None
    ) -> ModelKeys:
        """From the settings' texts (None: the development key); weak keys are refused unless
        Redis is local (:func:`check_key`)."""
        local = is_local(redis_url)
        key = check_key(signing or DEVELOPMENT_KEY, local)
        extra = tuple(check_key(t, local, "AHUNT_MODEL_VERIFY_KEYS") for t in accepted if t.strip())
        return cls(key, extra)

    def sign(self, manifest_json: str, model_sha256: str) -> str:
        return sign_digest(self.signing, manifest_json, model_sha256)

    def verifying_key(
        self, manifest_json: str, model_sha256: str, signature: str | None, what: str
    ) -> bytes:
        """The accepted key that made ``signature``; :class:`SignatureError` if none did."""
        if not signature:
            raise SignatureError(
                f"{what}: unsigned model refused (publish it with the signing key, or "
                "`ahunt models sign` it after checking where it came from)"
            )
        for key in (self.signing, *self.also_accepted):
            expected = sign_digest(key, manifest_json, model_sha256)
            if hmac.compare_digest(expected, signature.strip()):
                return key
        raise SignatureError(f"{what}: signature does not verify with any accepted key: refused")

    def verify(
        self, manifest_json: str, model_sha256: str, signature: str | None, what: str
    ) -> None:
        self.verifying_key(manifest_json, model_sha256, signature, what)
