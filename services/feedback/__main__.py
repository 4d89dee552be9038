"""``python -m services.feedback``: the same as ``ahunt feedback``, without loading the other
sub-commands (the training and benchmark ones import torch)."""

from __future__ import annotations

import argparse

from services.feedback.cli import add_feedback_arguments, run_feedback

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m services.feedback")
    add_feedback_arguments(parser)
    raise SystemExit(run_feedback(parser.parse_args()))
