"""Training losses over the reserve head's logits. The reserve output is never a target."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Loss = Literal["ce", "focal"]
LOSSES: tuple[Loss, ...] = ("ce", "focal")


def classification_loss(
    logits: torch.Tensor, targets: torch.Tensor, kind: Loss, focal_gamma: float = 2.0
) -> torch.Tensor:
    """Mean loss. ``focal`` down-weights examples the network already fits (Lin et al. 2017),
    which keeps the many easy normals from drowning the few anomalies."""
    log_p = F.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, targets[:, None])[:, 0]
    if kind == "ce":
        return -log_pt.mean()
    if kind == "focal":
        return (-((1.0 - log_pt.exp()) ** focal_gamma) * log_pt).mean()
    raise ValueError(f"unknown loss {kind!r}; choose from {LOSSES}")
