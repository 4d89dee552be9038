"""Training for the retrain service: device choice, epochs with progress, learner states.

:func:`train_epochs` is the learner's own training step (``AhuntLearner.fit``: the same balanced
sampler, augmentation, loss and optimizer, driven by the learner's generator) run on a chosen
device and reporting each epoch. Augmentation runs on the CPU with the learner's generator and
only the batch moves to the device, so the random choices are the same on CPU and GPU. The
network and optimizer go back to the CPU afterwards: the detector, export and saved states are
CPU-only.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from models.augment import augment
from models.learner import AhuntLearner, TrainReport
from models.losses import classification_loss
from models.sampling import balanced_sample_weights
from models.taxonomy import normalise_class_name
from services.retrain.settings import Device

log = logging.getLogger("ahunt.retrain")

EpochCallback = Callable[[int, int, float], None]  # (epoch, epochs, mean loss)


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


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    # Adam keeps its moments beside each parameter; "step" stays a CPU scalar by design.
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor):
                state[key] = value.to(device)


def log_epoch(epoch: int, epochs: int, loss: float) -> None:
    log.info("epoch %d/%d loss %.4f", epoch, epochs, loss)


def train_epochs(
    learner: AhuntLearner,
    x: np.ndarray,
    labels: Sequence[str],
    epochs: int,
    *,
    device: torch.device | None = None,
    min_epoch_samples: int | None = None,
    batch_size: int | None = None,
    on_epoch: EpochCallback | None = log_epoch,
) -> TrainReport:
    """Train ``learner`` for ``epochs`` on ``x`` with class names ``labels`` (new names grow the
    head first), reporting each epoch's mean loss to ``on_epoch``."""
    if len(x) != len(labels) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs (got {len(x)} and {len(labels)})")
    if epochs < 1:
        raise ValueError("epochs must be >= 1")
    if x.ndim != 4 or tuple(x.shape[1:]) != learner.spec.shape:
        raise ValueError(f"expected inputs (N, {learner.spec.shape}), got {tuple(x.shape)}")
    device = device or torch.device("cpu")
    names = [normalise_class_name(n) for n in labels]
    learner.add_classes(names)  # on the CPU: the grown head is created there
    targets = np.array([learner.classes.index(n) for n in names], dtype=np.int64)
    learner.counts = {c: int((targets == i).sum()) for i, c in enumerate(learner.classes) if i}

    cfg = learner.config
    size = batch_size or cfg.batch_size
    per_epoch = max(len(x), min_epoch_samples or cfg.min_epoch_samples)
    probs = torch.as_tensor(balanced_sample_weights(targets, cfg.max_oversample))
    x_t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
    y_t = torch.as_tensor(targets)  # stays on the CPU: see the loss below
    generator = learner._generator  # the learner's one source of randomness (see AhuntLearner)
    net = learner.net
    losses: list[float] = []
    steps = 0
    devices = [device.index or 0] if device.type == "cuda" else []
    net.to(device)
    _optimizer_to(learner.optimizer, device)
    try:
        net.train()
        with torch.random.fork_rng(devices=devices):
            seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
            torch.manual_seed(seed)  # dropout: seeds the CUDA generators too
            for epoch in range(1, epochs + 1):
                draws = torch.multinomial(probs, per_epoch, replacement=True, generator=generator)
                total = 0.0
                for start in range(0, per_epoch, size):
                    idx = draws[start : start + size]
                    batch = augment(x_t[idx], cfg.augment, generator).to(device, non_blocking=True)
                    _, logits = net(batch)
                    # The loss runs on the CPU: models.losses builds its smoothed targets there,
                    # and (batch, K+1) logits are a tiny copy; autograd carries the gradient
                    # back to the device.
                    loss = classification_loss(
                        logits.cpu(), y_t[idx], cfg.loss, cfg.focal_gamma, cfg.label_smoothing
                    )
                    learner.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    learner.optimizer.step()
                    total += float(loss.detach()) * len(idx)
                    steps += 1
                losses.append(total / per_epoch)
                if on_epoch is not None:
                    on_epoch(epoch, epochs, losses[-1])
    finally:
        net.to("cpu")
        _optimizer_to(learner.optimizer, torch.device("cpu"))
        net.eval()
    return TrainReport(epochs, steps, tuple(losses), dict(learner.counts))


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
