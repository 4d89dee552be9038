"""The demo's two simulated users and what they hunt."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoUser:
    name: str
    interesting: tuple[str, ...]
    boring: tuple[str, ...]
    # True: every class they do not hunt is "not interesting" to them; False: only ``boring`` is,
    # the rest is labelled with no opinion.
    others_boring: bool = True


USERS = (
    DemoUser("alice", ("lensed_arc",), ("satellite",)),
    DemoUser("bob", ("satellite",), ("cosmic_ray",)),
)
