"""``ahunt kafka``: the embedded Kafka-protocol broker (Tansu, memory storage) in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading

from services.common.embedded import EmbeddedKafka


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--host", default="127.0.0.1")


def main(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with EmbeddedKafka(port=args.port, host=args.host) as broker:
        print(
            f"Kafka-protocol broker (Tansu, memory storage) at {broker.bootstrap_servers}; "
            "Ctrl-C stops it",
            flush=True,
        )
        try:
            while not done.wait(0.5) and broker.process and broker.process.poll() is None:
                pass
        except KeyboardInterrupt:
            pass
    return 0
