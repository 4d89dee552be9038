"""Raw Kafka requests for the security tests: what a broker answers on the wire, before any client
library interprets (or, for a malformed answer, crashes on) it.

Only the three non-flexible request versions the tests need are encoded here: ApiVersions v0,
SaslHandshake v1 and CreateAcls v1 / DescribeAcls v1. Everything else goes through confluent-kafka.
"""

from __future__ import annotations

import socket
import struct

API_KEYS = {
    "Produce": 0,
    "Fetch": 1,
    "Metadata": 3,
    "OffsetCommit": 8,
    "JoinGroup": 11,
    "SaslHandshake": 17,
    "ApiVersions": 18,
    "CreateTopics": 19,
    "DescribeAcls": 29,
    "CreateAcls": 30,
    "DeleteAcls": 31,
    "SaslAuthenticate": 36,
    "DescribeUserScramCredentials": 50,
    "AlterUserScramCredentials": 51,
}


class ConnectionClosed(ConnectionError):
    """The broker closed the connection instead of answering."""


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _read_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionClosed(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def request(bootstrap: str, api_key: int, version: int, body: bytes, timeout: float = 5.0) -> bytes:
    """One request on a fresh connection (request header v1); the response body after the
    correlation id."""
    host, port = bootstrap.rsplit(":", 1)
    header = struct.pack(">hhi", api_key, version, 7) + _string("ahunt-wire-probe")
    message = header + body
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(message)) + message)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        return _read_exact(sock, size)[4:]


def api_versions(bootstrap: str) -> dict[int, tuple[int, int]]:
    """api key -> (min, max) version the broker advertises."""
    body = request(bootstrap, API_KEYS["ApiVersions"], 0, b"")
    error, count = struct.unpack(">hi", body[:6])
    assert error == 0, error
    entries = (struct.unpack(">hhh", body[6 + 6 * i : 12 + 6 * i]) for i in range(count))
    return {key: (low, high) for key, low, high in entries}


def sasl_handshake(bootstrap: str, mechanism: str) -> tuple[int, list[str]]:
    """(error code, mechanisms) of a SaslHandshake v1; raises ConnectionClosed if dropped."""
    body = request(bootstrap, API_KEYS["SaslHandshake"], 1, _string(mechanism))
    error, count = struct.unpack(">hi", body[:6])
    offset, mechanisms = 6, []
    for _ in range(count):
        (length,) = struct.unpack(">h", body[offset : offset + 2])
        mechanisms.append(body[offset + 2 : offset + 2 + length].decode())
        offset += 2 + length
    return error, mechanisms


def create_topic_read_acl(bootstrap: str, topic: str, principal: str) -> bytes:
    """CreateAcls v1 for ALLOW ``principal`` READ on the literal topic; the raw response body
    (a well-formed answer is throttle_time_ms + a results array with one entry)."""
    topic_type, literal, read, allow = 2, 3, 8, 3
    creation = (
        struct.pack(">b", topic_type)
        + _string(topic)
        + struct.pack(">b", literal)
        + _string(principal)
        + _string("*")
        + struct.pack(">bb", read, allow)
    )
    return request(bootstrap, API_KEYS["CreateAcls"], 1, struct.pack(">i", 1) + creation)


def describe_all_acls(bootstrap: str) -> tuple[int, int]:
    """DescribeAcls v1 matching every binding: (error code, number of resources returned)."""
    any_type, any_pattern, any_op, any_permission = 1, 1, 1, 1
    null = struct.pack(">h", -1)
    body = request(
        bootstrap,
        API_KEYS["DescribeAcls"],
        1,
        struct.pack(">b", any_type)
        + null
        + struct.pack(">b", any_pattern)
        + null
        + null
        + struct.pack(">bb", any_op, any_permission),
    )
    error = struct.unpack(">h", body[4:6])[0]
    (message_length,) = struct.unpack(">h", body[6:8])
    offset = 8 + max(0, message_length)
    (resources,) = struct.unpack(">i", body[offset : offset + 4])
    return error, resources
