"""Per-channel sums over the parameter slices a channel group owns."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping

import torch

from ..groups import ChannelGroup

__all__ = ["channel_sums", "cosine_conflict", "sign_conflict", "SliceReducer"]


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


def cosine_conflict(gradients: Mapping[str, Mapping[str, torch.Tensor]], groups: list[ChannelGroup]
                    ) -> list[torch.Tensor]:
    """Per channel, the mean over pairs of the tasks its group reaches of max(0, -cos(g_a(c), g_b(c))), where g_t(c)
    is task t's gradient (`gradients[t][param]`) restricted to the channel's slices; in [0, 1], zero for a group
    that reaches fewer than two of the tasks and for a pair where either gradient is zero.

    Computed in float64 with the norms taken apart (sqrt(|a|^2) * sqrt(|b|^2)): gradients near 1e-12 square to
    1e-24, and the product of two such squares underflows float32 to zero, which made k 1.0 instead of 0.0995.
    """
    grads = {t: {n: g.double() for n, g in per_param.items()} for t, per_param in gradients.items()}
    norms = {t: SliceReducer({n: g * g for n, g in per_param.items()}, dtype=torch.float64)
             for t, per_param in grads.items()}
    conflicts = []
    for group in groups:
        tasks = sorted(set(group.tasks) & set(grads))
        pairs = list(itertools.combinations(tasks, 2))
        total = torch.zeros(group.channels, dtype=torch.float64)
        params = {piece.param for piece in group.slices}
        for a, b in pairs:
            products = {n: grads[a][n] * grads[b][n] for n in params if n in grads[a] and n in grads[b]}
            dots = SliceReducer(products, dtype=torch.float64).group(group)
            denominator = norms[a].group(group).sqrt() * norms[b].group(group).sqrt()
            cosine = torch.where(denominator > 0, dots / denominator.clamp_min(1e-300), torch.zeros_like(dots))
            total += torch.clamp(-cosine, min=0.0, max=1.0)
        conflicts.append((total / len(pairs) if pairs else total).float())
    return conflicts


def sign_conflict(gradients: Mapping[str, Mapping[str, torch.Tensor]], groups: list[ChannelGroup]
                  ) -> list[torch.Tensor]:
    """Per channel, 1 - the mean over its elements of |sum_t g_t| / sum_t |g_t| over the tasks its group reaches:
    0 where the tasks' gradients agree in sign everywhere, towards 1 where they cancel (GradDrop's sign purity,
    P = (1 + sum g / sum |g|) / 2, read as 1 - |2P - 1|). Zero for a group that reaches fewer than two tasks."""
    result = []
    for group in groups:
        tasks = sorted(set(group.tasks) & set(gradients))
        if len(tasks) < 2:
            result.append(torch.zeros(group.channels))
            continue
        params = {piece.param for piece in group.slices}
        purity, count = {}, {}
        for name in params:
            stacked = [gradients[t][name].double() for t in tasks if name in gradients[t]]
            if len(stacked) < 2:
                continue
            net, spread = torch.stack(stacked).sum(0).abs(), torch.stack(stacked).abs().sum(0)
            purity[name] = torch.where(spread > 0, net / spread.clamp_min(1e-300), torch.ones_like(net))
            count[name] = torch.ones_like(net)
        pure = SliceReducer(purity, dtype=torch.float64).group(group)
        elements = SliceReducer(count, dtype=torch.float64).group(group)
        result.append(torch.where(elements > 0, 1 - pure / elements.clamp_min(1), torch.zeros_like(pure)).float())
    return result
