"""Per-channel sums over the parameter slices a channel group owns."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from .graph import ChannelGroup

__all__ = ["channel_sums", "SliceReducer"]


class SliceReducer:
    """Sums a per-parameter tensor over each channel's slices, reducing every (parameter, dim) only once.

    Args:
        tensors: parameter name -> tensor of the parameter's shape (a weight, a gradient, a product of both).
        dtype: the precision of the sums (float64 where tiny values are squared and multiplied).
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor] | Callable[[str], torch.Tensor | None],
                 dtype: torch.dtype = torch.float32):
        self._lookup = tensors.get if isinstance(tensors, Mapping) else tensors
        self._reduced: dict[tuple[str, int], torch.Tensor | None] = {}
        self.dtype = dtype

    def _along(self, param: str, dim: int) -> torch.Tensor | None:
        key = (param, dim)
        if key not in self._reduced:
            tensor = self._lookup(param)
            if tensor is None:
                self._reduced[key] = None
            else:
                tensor = tensor.detach().to(self.dtype)
                others = [d for d in range(tensor.dim()) if d != dim]
                self._reduced[key] = tensor.sum(dim=others) if others else tensor
        return self._reduced[key]

    def group(self, group: ChannelGroup) -> torch.Tensor:
        """Per-channel sum for one group; parameters with no tensor contribute zero."""
        total = torch.zeros(group.channels, dtype=self.dtype)
        for piece in group.slices:
            along = self._along(piece.param, piece.dim)
            if along is not None:
                total.index_add_(0, piece.root, along[piece.local].to(total.dtype))
        return total


def channel_sums(groups: list[ChannelGroup], tensors: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
    """`sum over the slices of channel c of tensors[param]` for every channel of every group."""
    reducer = SliceReducer(tensors)
    return [reducer.group(group) for group in groups]
