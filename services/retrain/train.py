"""Training around the learner for the retrain service: where it runs, its progress in the log,
and learner states as bytes. The training step itself is ``AhuntLearner.fit`` (the one the
benchmark runs too), given the device, epoch size and batch size from ``RetrainSettings``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from models.learner import AhuntLearner, TrainReport
from services.retrain.settings import Device, RetrainSettings

log = logging.getLogger("ahunt.retrain")


def select_device(preference: Device = "auto") -> torch.device:
    """The one place that decides where training runs: CUDA when asked or when torch sees a GPU.

    >>> select_device("cpu").type
    'cpu'
    """
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("AHUNT_RETRAIN_DEVICE=cuda but torch sees no GPU")
        return torch.device("cuda")
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def log_epoch(epoch: int, epochs: int, loss: float) -> None:
    log.info("epoch %d/%d loss %.4f", epoch, epochs, loss)


def fit(
    learner: AhuntLearner,
    x: np.ndarray,
    labels: Sequence[str],
    epochs: int,
    settings: RetrainSettings,
) -> TrainReport:
    """``learner.fit`` as the service runs it: on the configured device, epoch size and batch
    size, each epoch's loss in the log."""
    return learner.fit(
        x,
        labels,
        epochs,
        device=select_device(settings.device),
        min_epoch_samples=settings.min_epoch_samples,
        batch_size=settings.batch_size,
        on_epoch=log_epoch,
    )


def learner_bytes(learner: AhuntLearner) -> bytes:
    buffer = io.BytesIO()
    torch.save(learner.state(), buffer)
    return buffer.getvalue()


def learner_from_bytes(data: bytes) -> AhuntLearner:
    # weights_only: a state is tensors, dicts, lists and numbers; refusing anything else means
    # bytes in Redis can never run code in this process.
    state: dict[str, Any] = torch.load(io.BytesIO(data), weights_only=True)
    return AhuntLearner.from_state(state)


def configure_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)
