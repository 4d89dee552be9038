"""``python -m services.retrain``: the retrain loop (same as ``ahunt retrain``)."""

from __future__ import annotations

import argparse
import sys

from services.retrain.cli import add_retrain_arguments, retrain_main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.retrain")
    add_retrain_arguments(parser)
    args = parser.parse_args(sys.argv[1:])
    args.command = "retrain"
    raise SystemExit(retrain_main(args))
