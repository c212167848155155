"""The measured latency of a pruned Ultralytics network against its dense parent."""

from __future__ import annotations

from typing import Any

import torch

from ...latency import latency_ratios
from .outputs import network

__all__ = ["latency_ratio"]


def latency_ratio(dense: Any, pruned: Any, *, imgsz: int = 640, batch: int = 1, repeats: int = 15) -> float:
    """Pruned latency / dense latency of one inference forward (what `predict` runs, without pre- and
    post-processing), both in eval mode, interleaved round by round so load from other processes cancels; the
    median of the per-round ratios. Below 1 is faster."""
    dense_net, pruned_net = network(dense), network(pruned)
    images = torch.zeros(batch, 3, imgsz, imgsz, device=next(dense_net.parameters()).device)
    return latency_ratios([dense_net, pruned_net], images, repeats=repeats)[1]
