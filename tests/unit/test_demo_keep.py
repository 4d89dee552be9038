"""``ahunt demo --keep``: what a person is told once the demo is over, and when it lets go."""

from __future__ import annotations

import argparse
import threading

from services.tools.demo.cli import add_arguments
from services.tools.demo.keep import keep_open


def test_keep_prints_the_desk_and_every_token_then_waits_for_stop() -> None:
    lines: list[str] = []
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    tokens = {"alice": "ahunt_a", "bob": "ahunt_b"}
    assert keep_open("http://127.0.0.1:9", tokens, lambda: None, stop, lines.append) is None
    text = "\n".join(lines)
    assert "http://127.0.0.1:9/desk" in text
    assert "sign in as alice: ahunt_a" in text and "sign in as bob: ahunt_b" in text


def test_keep_lets_go_when_a_service_dies() -> None:
    deaths = iter([None, "scorer (status 1)"])
    lines: list[str] = []
    gone = keep_open("http://x", {}, lambda: next(deaths), threading.Event(), lines.append)
    assert gone == "scorer (status 1)" and "scorer (status 1) stopped" in lines[-1]


def test_demo_has_a_keep_flag() -> None:
    p = argparse.ArgumentParser()
    add_arguments(p)
    assert p.parse_args(["--keep"]).keep is True and p.parse_args([]).keep is False
