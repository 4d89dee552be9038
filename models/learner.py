"""The AHUNT learner: trains the reserve-head CNN, grows it for new classes, scores, and fits the
latent detector. Pure learning code: no Kafka, Redis or HTTP.

Typical use (the retrain service and the benchmark do exactly this)::

    learner = AhuntLearner(spec, ["normal"], LearnerConfig(), seed=1)
    learner.fit(x_bootstrap, ["normal"] * len(x_bootstrap))      # pre-train
    learner.fit_detector(x_unlabelled)                             # cold-start novelty
    pred = learner.predict(x_pool)                                 # latent, probs, novelty
    learner.fit(x_new, ["normal", "lens"], epochs=2)   # fine-tune; "lens" grows the head

Inputs are already preprocessed arrays (N, C, H, W) float32 (see ``models.preprocess``).
Class index 0 is always the reserve class; ``learner.classes`` lists names in output order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from models.augment import AUGMENTATIONS, Augmentation, augment
from models.detector import KnnDetector, fit_knn_detector
from models.losses import LOSSES, Loss, classification_loss
from models.network import AhuntNet, EncoderConfig, grow_optimizer_state
from models.preprocess import InputSpec
from models.sampling import balanced_sample_weights
from models.taxonomy import RESERVE, normalise_class_name


@dataclass(frozen=True)
class LearnerConfig:
    """Everything that decides how the learner trains. Frozen: change it with ``replace``."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    pretrain_epochs: int = 10
    finetune_epochs: int = 2
    # An epoch draws max(len(train), min_epoch_samples) examples, so a tiny labelled set still
    # gets enough optimisation steps. 2048 (was 512) is issue 7's main gain: with a few answers
    # per night, 2 epochs of 512 draws left the new class under-fitted (digits B held-out AUROC
    # 0.948 -> 0.994, docs/BENCHMARKS.md); sets above 2048 examples are unaffected.
    min_epoch_samples: int = 2048
    loss: Loss = "ce"
    focal_gamma: float = 2.0
    # Share of each target moved onto the other known classes, never onto the reserve
    # (models.losses.smoothed_targets); 0 disables it.
    label_smoothing: float = 0.1
    augment: Augmentation = "d4"
    max_oversample: float = 10.0
    detector_k: int = 5
    detector_bank: int = 2048

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if self.lr <= 0 or self.batch_size < 1 or self.max_oversample < 1:
            raise ValueError("lr > 0, batch_size >= 1 and max_oversample >= 1 are required")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.min_epoch_samples < 1:
            raise ValueError("min_epoch_samples must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "encoder"}
        d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LearnerConfig:
        d = dict(d)
        # States saved before label smoothing existed were trained without it: resume them so.
        d.setdefault("label_smoothing", 0.0)
        encoder = EncoderConfig.from_dict(d.pop("encoder"))
        return cls(encoder=encoder, **d)

    def with_(self, **changes: Any) -> LearnerConfig:
        return replace(self, **changes)


@dataclass(frozen=True)
class Prediction:
    """Outputs for a batch: latent (N, D), probs (N, K+1) with column 0 = reserve, novelty (N,)
    (NaN where no detector has been fitted yet)."""

    latent: np.ndarray
    probs: np.ndarray
    novelty: np.ndarray


EpochCallback = Callable[[int, int, float], None]  # (epoch, epochs, mean loss)


def _optimizer_to(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    # Adam keeps its moments beside each parameter; "step" stays a CPU scalar by design.
    for state in optimizer.state.values():
        for key, value in state.items():
            if key != "step" and isinstance(value, torch.Tensor):
                state[key] = value.to(device)


@dataclass(frozen=True)
class TrainReport:
    epochs: int
    steps: int
    losses: tuple[float, ...]  # mean loss per epoch
    class_counts: dict[str, int]


class AhuntLearner:
    """Reserve-head CNN with head growth, balanced fine-tuning and a latent detector."""

    def __init__(
        self,
        spec: InputSpec,
        classes: Sequence[str],
        config: LearnerConfig | None = None,
        seed: int = 0,
    ) -> None:
        self.spec = spec
        self.config = config or LearnerConfig()
        self.seed = seed
        names = [normalise_class_name(c) for c in classes]
        if not names or RESERVE in names or len(set(names)) != len(names):
            raise ValueError(f"need distinct known classes without {RESERVE!r}, got {names}")
        self.classes: list[str] = [RESERVE, *names]
        # One generator drives every random choice (init, sampling, augmentation, dropout seeds)
        # so the same seed and the same calls give the same numbers.
        self._generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = AhuntNet(spec, len(self.classes), self.config.encoder)
        self.optimizer = self._new_optimizer()
        self.detector: KnnDetector | None = None
        self.counts: dict[str, int] = {}

    # -- classes -------------------------------------------------------------------------------

    def _new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )

    def class_index(self, name: str) -> int:
        return self.classes.index(normalise_class_name(name))

    def add_classes(self, names: Sequence[str]) -> list[str]:
        """Grow the head for the names not known yet; returns the names actually added.

        Old output rows keep their weights, and the optimizer keeps its state for every old
        parameter (the reference code rebuilt the optimizer here, losing Adam's moments).
        """
        new: list[str] = []
        for name in names:
            n = normalise_class_name(name)
            if n == RESERVE:
                raise ValueError(f"{RESERVE!r} is never a training target")
            if n not in self.classes and n not in new:
                new.append(n)
        if new:
            head = self.net.head.linear
            old_params = (head.weight, head.bias)
            new_params = self.net.head.grow(len(new), self._generator)
            grow_optimizer_state(self.optimizer, old_params, new_params)
            self.classes.extend(new)
        return new

    # -- training ------------------------------------------------------------------------------

    def fit(
        self,
        x: np.ndarray,
        labels: Sequence[str],
        epochs: int | None = None,
        *,
        device: torch.device | None = None,
        min_epoch_samples: int | None = None,
        batch_size: int | None = None,
        on_epoch: EpochCallback | None = None,
    ) -> TrainReport:
        """Train on ``x`` with class-name ``labels`` from the current weights: the one training
        step of the project (the benchmark and the retrain service both call it).

        Unknown label names grow the head first. ``epochs`` defaults to ``pretrain_epochs`` on the
        first call and ``finetune_epochs`` afterwards; ``min_epoch_samples`` and ``batch_size``
        default to the config's. Each epoch draws from the balanced sampler, augments and
        optimises; its mean loss goes to ``on_epoch(epoch, epochs, loss)``.

        ``device`` (default CPU) is where the network runs. Sampling and augmentation stay on the
        CPU with the learner's generator and only each batch moves, so the random choices are the
        same on CPU and GPU; the network and optimizer come back to the CPU afterwards (the
        detector, export and saved states are CPU-only).
        """
        if len(x) != len(labels) or len(x) == 0:
            raise ValueError(f"need as many labels as inputs (got {len(x)} and {len(labels)})")
        self._check_input(x)
        names = [normalise_class_name(n) for n in labels]
        self.add_classes(names)  # on the CPU: the grown head is created there
        if epochs is None:
            epochs = self.config.finetune_epochs if self.counts else self.config.pretrain_epochs
        if epochs < 1:
            raise ValueError("epochs must be >= 1")
        targets = np.array([self.classes.index(n) for n in names], dtype=np.int64)
        self.counts = {c: int((targets == i).sum()) for i, c in enumerate(self.classes) if i}

        cfg = self.config
        size = batch_size or cfg.batch_size
        per_epoch = max(len(x), min_epoch_samples or cfg.min_epoch_samples)
        probs = torch.as_tensor(balanced_sample_weights(targets, cfg.max_oversample))
        x_t = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32))
        y_t = torch.as_tensor(targets)  # stays on the CPU: see the loss below
        device = device or torch.device("cpu")
        devices = [device.index or 0] if device.type == "cuda" else []
        losses: list[float] = []
        steps = 0
        self.net.to(device)
        _optimizer_to(self.optimizer, device)
        try:
            self.net.train()
            with torch.random.fork_rng(devices=devices):
                seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator))
                torch.manual_seed(seed)  # dropout: seeds the CUDA generators too
                for epoch in range(1, epochs + 1):
                    draws = torch.multinomial(
                        probs, per_epoch, replacement=True, generator=self._generator
                    )
                    total = 0.0
                    for start in range(0, per_epoch, size):
                        idx = draws[start : start + size]
                        batch = augment(x_t[idx], cfg.augment, self._generator)
                        _, logits = self.net(batch.to(device, non_blocking=True))
                        # The loss runs on the CPU: models.losses builds its smoothed targets
                        # there, and (batch, K+1) logits are a tiny copy; autograd carries the
                        # gradient back to the device.
                        loss = classification_loss(
                            logits.cpu(), y_t[idx], cfg.loss, cfg.focal_gamma, cfg.label_smoothing
                        )
                        self.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        self.optimizer.step()
                        total += float(loss.detach()) * len(idx)
                        steps += 1
                    losses.append(total / per_epoch)
                    if on_epoch is not None:
                        on_epoch(epoch, epochs, losses[-1])
        finally:
            self.net.to("cpu")
            _optimizer_to(self.optimizer, torch.device("cpu"))
            self.net.eval()
        return TrainReport(epochs, steps, tuple(losses), dict(self.counts))

    def fit_detector(self, x: np.ndarray) -> None:
        """Fit the latent detector on unlabelled inputs with the current encoder."""
        latent = self.embed(x)
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator))
        self.detector = fit_knn_detector(
            latent, k=self.config.detector_k, max_bank=self.config.detector_bank, seed=seed
        )

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, x: np.ndarray, batch_size: int = 1024) -> Prediction:
        self._check_input(x)
        self.net.eval()
        latents, probs, novelty = [], [], []
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[start : start + batch_size], np.float32))
            z, logits = self.net(xb)
            latents.append(z)
            probs.append(F.softmax(logits, dim=1))
            if self.detector is not None:
                novelty.append(self.detector(z))
        z_all = torch.cat(latents) if latents else torch.zeros((0, self.config.encoder.latent_dim))
        p_all = torch.cat(probs) if probs else torch.zeros((0, len(self.classes)))
        if self.detector is not None and novelty:
            nov = torch.cat(novelty).numpy()
        else:
            nov = np.full(len(x), np.nan, dtype=np.float32)
        return Prediction(z_all.numpy(), p_all.numpy(), nov)

    def embed(self, x: np.ndarray) -> np.ndarray:
        return self.predict(x).latent

    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != self.spec.shape:
            raise ValueError(f"expected inputs (N, {self.spec.shape}), got {tuple(x.shape)}")

    # -- persistence ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to resume training exactly (weights, optimizer, detector, RNG)."""
        return {
            "spec": self.spec.to_dict(),
            "config": self.config.to_dict(),
            "seed": self.seed,
            "classes": list(self.classes),
            "counts": dict(self.counts),
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "detector": None
            if self.detector is None
            else {
                "bank": self.detector.bank,
                "k": self.detector.k,
                "reference": float(self.detector.reference),
            },
            "generator": self._generator.get_state(),
        }

    def save(self, path: str | Path) -> None:
        torch.save(self.state(), Path(path))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AhuntLearner:
        learner = cls(
            InputSpec.from_dict(state["spec"]),
            state["classes"][1:],
            LearnerConfig.from_dict(state["config"]),
            seed=int(state["seed"]),
        )
        learner.net.load_state_dict(state["net"])
        learner.optimizer = learner._new_optimizer()
        learner.optimizer.load_state_dict(state["optimizer"])
        learner.counts = dict(state["counts"])
        det = state["detector"]
        if det is not None:
            learner.detector = KnnDetector(det["bank"], int(det["k"]), float(det["reference"]))
        learner._generator.set_state(state["generator"])
        learner.net.eval()
        return learner

    @classmethod
    def load(cls, path: str | Path) -> AhuntLearner:
        return cls.from_state(torch.load(Path(path), weights_only=False))
