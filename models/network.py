"""The AHUNT network: a small CNN encoder, a latent layer and a softmax head with a reserve class.

The head's output 0 is the permanent **reserve** class: it is never a training target, so training
on the known classes pushes ``p(reserve)`` down on everything familiar and it works as a "none of
the above" novelty score. New classes are appended after the existing ones, so an output index
never changes meaning once assigned: when the head grows, old rows keep their exact weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from models.preprocess import InputSpec
from models.taxonomy import RESERVE

__all__ = ["RESERVE", "AhuntNet", "Encoder", "EncoderConfig", "ReserveHead", "grow_optimizer_state"]


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of the encoder (the reference network is conv(16)+pool, conv(8)+pool, dense 64).

    ``conv_channels`` gives one 3x3 convolution + ReLU + 2x2 max-pool block per entry; pooling is
    skipped once the feature map is smaller than 2 pixels, so 8x8 inputs and 63x63 stamps use the
    same description.
    """

    conv_channels: tuple[int, ...] = (16, 32)
    latent_dim: int = 64
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if not self.conv_channels or any(c < 1 for c in self.conv_channels):
            raise ValueError(f"conv_channels must be positive, got {self.conv_channels}")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["conv_channels"] = list(self.conv_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        return cls(
            conv_channels=tuple(int(c) for c in d["conv_channels"]),
            latent_dim=int(d["latent_dim"]),
            dropout=float(d["dropout"]),
        )


class Encoder(nn.Module):
    """Stamps (N, C, H, W) -> latent features (N, latent_dim), non-negative (ReLU)."""

    def __init__(self, spec: InputSpec, config: EncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels, height, width = spec.shape
        for out_channels in config.conv_channels:
            layers.append(nn.Conv2d(channels, out_channels, 3, padding=1))
            if min(height, width) >= 2:
                layers.append(nn.MaxPool2d(2))
                height, width = height // 2, width // 2
            # ReLU after the pool: max-pool and ReLU commute, and the ReLU then touches a quarter
            # of the pixels (the block is memory-bound on CPU).
            layers.append(nn.ReLU())
            channels = out_channels
        self.features = nn.Sequential(*layers)
        self.latent = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * height * width, config.latent_dim), nn.ReLU()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.latent(self.features(x))


class ReserveHead(nn.Module):
    """Linear softmax head whose output 0 is the reserve class; grows by appending outputs."""

    def __init__(self, latent_dim: int, n_outputs: int, dropout: float) -> None:
        super().__init__()
        if n_outputs < 2:
            raise ValueError("the head needs the reserve plus at least one class")
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(latent_dim, n_outputs)

    @property
    def n_outputs(self) -> int:
        return self.linear.out_features

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(latent))

    def grow(self, n_new: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``n_new`` outputs keeping the old rows exactly; returns the new (weight, bias).

        New rows get small random weights and the mean old bias, so a new class starts neither
        dominant nor impossible.
        """
        old = self.linear
        new = nn.Linear(old.in_features, old.out_features + n_new)
        with torch.no_grad():
            new.weight[: old.out_features] = old.weight
            new.bias[: old.out_features] = old.bias
            bound = 1.0 / old.in_features**0.5
            init = torch.rand((n_new, old.in_features), generator=generator) * 2 - 1
            new.weight[old.out_features :] = init * bound
            new.bias[old.out_features :] = old.bias[1:].mean()
        self.linear = new
        return new.weight, new.bias


class AhuntNet(nn.Module):
    """Encoder + reserve head. ``forward`` returns (latent, logits)."""

    def __init__(self, spec: InputSpec, n_outputs: int, config: EncoderConfig) -> None:
        super().__init__()
        self.spec = spec
        self.config = config
        self.encoder = Encoder(spec, config)
        self.head = ReserveHead(config.latent_dim, n_outputs, config.dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x)
        return latent, self.head(latent)


def grow_optimizer_state(
    optimizer: torch.optim.Optimizer,
    old_params: tuple[torch.Tensor, ...],
    new_params: tuple[torch.Tensor, ...],
) -> None:
    """Point ``optimizer`` at ``new_params`` (grown copies of ``old_params``), keeping its state.

    Adam-like per-parameter state (exp_avg, exp_avg_sq, ...) is copied into the leading rows of
    zero tensors of the new shape; scalar state (``step``) is kept. The new rows start with zero
    moments, as a freshly created parameter would.
    """
    for old, new in zip(old_params, new_params, strict=True):
        for group in optimizer.param_groups:
            for i, p in enumerate(group["params"]):
                if p is old:
                    group["params"][i] = new
        state = optimizer.state.pop(old, None)
        if state is None:
            continue
        grown: dict[str, Any] = {}
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.shape == old.shape:
                bigger = torch.zeros_like(new)
                bigger[: old.shape[0]] = value
                grown[key] = bigger
            else:
                grown[key] = value
        optimizer.state[new] = grown
