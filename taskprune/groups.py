"""Plain data about channel groups: which parameter slices each channel owns, and which tasks it serves.

No torch-pruning here: `taskprune.graph` reads its groups into these (the slices from `taskprune.layers`), and
everything else works on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

__all__ = ["ChannelGroup", "ParamSlice"]


@dataclass(frozen=True)
class ParamSlice:
    """The part of one parameter that a group's channels own: `param[..., local[i], ...]` (along `dim`) belongs
    to the group's channel `root[i]`."""

    param: str
    dim: int
    local: torch.Tensor
    root: torch.Tensor


@dataclass
class ChannelGroup:
    """Channels that must be removed together (one root layer's outputs and everything coupled to them)."""

    index: int
    root: str
    channels: int
    out_layers: tuple[str, ...]
    in_layers: tuple[str, ...]
    slices: tuple[ParamSlice, ...]
    tasks: frozenset[str] = field(default_factory=frozenset)
    kept_whole: str = ""  # why the group may not be pruned; empty when it may

    @property
    def prunable(self) -> bool:
        """Whether the planner may remove channels of this group (nothing keeps it whole)."""
        return not self.kept_whole
