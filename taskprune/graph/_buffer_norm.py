"""A torch-pruning pruning function for parameter-free norms whose per-channel terms are buffers.

torchvision's detectors normalise with ``FrozenBatchNorm2d``: weight, bias and statistics are buffers, so
torch-pruning sees only a multiply and an add by constant tensors and cannot slice them; removing a channel of the
conv before one breaks the forward. Registered as a customized layer (`_depgraph.DependencyGraph.build` does it
for every such class in the model), the norm couples its input and output channels like a BatchNorm and loses the
same channels from every per-channel buffer. This file and `_depgraph.py` hold taskprune's only torch-pruning
subclasses; `pruning_graph.py` reads what they find.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch_pruning.pruner.function import BasePruningFunc

__all__ = ["BufferNormPruner", "buffer_norm_classes"]


def _channels(module: nn.Module) -> int | None:
    """C when every floating buffer of a leaf module without parameters is one-dimensional of length C > 1."""
    if next(module.children(), None) is not None or next(module.parameters(recurse=False), None) is not None:
        return None
    sizes = {b.shape[0] if b.dim() == 1 else -1 for b in module.buffers(recurse=False) if b.is_floating_point()}
    return sizes.pop() if len(sizes) == 1 and min(sizes) > 1 else None


def buffer_norm_classes(model: nn.Module) -> list[type]:
    """Classes in `model` whose every instance is a parameter-free module of per-channel buffers only."""
    found: dict[type, bool] = {}
    for module in model.modules():
        if type(module).__module__.startswith("torch.nn") or type(module) is type(model):
            continue  # torch's own layers have pruners of their own; the model itself is no norm
        found[type(module)] = found.get(type(module), True) and _channels(module) is not None
    return [cls for cls, every in found.items() if every]


class BufferNormPruner(BasePruningFunc):
    """Removes channels from every per-channel buffer of a parameter-free norm (FrozenBatchNorm2d-like)."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        channels = _channels(layer)
        if channels is None:
            raise ValueError(f"{type(layer).__name__} no longer holds per-channel buffers of one length")
        keep = torch.tensor(sorted(set(range(channels)) - {int(i) for i in idxs}), dtype=torch.long)
        for name, buffer in list(layer._buffers.items()):
            if buffer is not None and buffer.is_floating_point():
                # a new tensor, as torch-pruning does for parameters: a copy of the graph shares the old one
                layer._buffers[name] = buffer.index_select(0, keep.to(buffer.device))
        return layer

    prune_in_channels = prune_out_channels  # one set of channels: pruning either side prunes both

    def get_out_channels(self, layer: nn.Module) -> Any:
        return _channels(layer)

    get_in_channels = get_out_channels
