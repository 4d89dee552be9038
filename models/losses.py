"""Training losses over the reserve head's logits. The reserve output is never a target."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Loss = Literal["ce", "focal"]
LOSSES: tuple[Loss, ...] = ("ce", "focal")


def smoothed_targets(targets: torch.Tensor, n_outputs: int, smoothing: float) -> torch.Tensor:
    """Soft targets (N, K+1): ``1 - smoothing`` on the label, ``smoothing`` spread evenly over the
    other *known* classes, and exactly 0 on the reserve (column 0), which stays "none of the above"
    rather than becoming a little of everything. With one known class there is nothing to spread.

    >>> [round(v, 3) for v in smoothed_targets(torch.tensor([1]), 4, 0.1)[0].tolist()]
    [0.0, 0.9, 0.05, 0.05]
    >>> smoothed_targets(torch.tensor([1]), 2, 0.1).tolist()
    [[0.0, 1.0]]
    """
    others = n_outputs - 2
    soft = torch.zeros((len(targets), n_outputs))
    if others > 0 and smoothing > 0:
        soft[:, 1:] = smoothing / others
        soft.scatter_(1, targets[:, None], 1.0 - smoothing)
    else:
        soft.scatter_(1, targets[:, None], 1.0)
    return soft


def classification_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    kind: Loss,
    focal_gamma: float = 2.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Mean loss. ``focal`` down-weights examples the network already fits (Lin et al. 2017),
    which keeps the many easy normals from drowning the few anomalies. ``label_smoothing`` moves
    that much of each target onto the other known classes (:func:`smoothed_targets`): the network
    stops pushing known-class logits to extremes on a handful of examples, which keeps the scores
    of near-miss objects informative."""
    if kind not in LOSSES:
        raise ValueError(f"unknown loss {kind!r}; choose from {LOSSES}")
    log_p = F.log_softmax(logits, dim=1)
    log_pt = log_p.gather(1, targets[:, None])[:, 0]
    if label_smoothing > 0:
        soft = smoothed_targets(targets, logits.shape[1], label_smoothing).to(log_p)
        per_example = -(soft * log_p).sum(dim=1)
    else:
        per_example = -log_pt
    if kind == "focal":
        per_example = (1.0 - log_pt.exp()) ** focal_gamma * per_example
    return per_example.mean()
