"""The demo's two simulated users and what they hunt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoUser:
    name: str
    interesting: tuple[str, ...]
    boring: tuple[str, ...]


USERS = (
    DemoUser("alice", ("lensed_arc",), ("satellite",)),
    DemoUser("bob", ("satellite",), ("cosmic_ray",)),
)
