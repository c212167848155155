"""What a plan costs as channels are removed: the exact cost models the planner for params, MACs and channels
keeps while it takes channels away (`Cost` is what they share)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from ..groups import ChannelGroup

__all__ = ["ChannelCount", "Cost", "CostModel"]


class Cost(Protocol):
    """The running cost of a plan: what removing channels saves, and the reduction reached so far."""

    target: str

    def removal(self, group: int, channels: torch.Tensor, commit: bool = False, restore: bool = False) -> float:
        """What removing `channels` (root indices) of `group` saves (negative with `restore`); `commit` applies it."""
        ...

    def reduction(self, extra_saving: float = 0.0) -> float:
        """The fraction of the dense cost removed, counting `extra_saving` as well."""
        ...


class CostModel:
    """Cost of the model as channels are removed: the sum over parameters of rate * size (params, MACs).

    Args:
        groups: the channel groups.
        shapes: parameter name -> shape of every parameter of the model.
        rates: parameter name -> cost of one element (1 for params; MACs per weight element for macs).
        total: the cost of the whole unpruned model (what the reduction is relative to).
        target: the name of the budget target it prices, for messages.
    """

    def __init__(self, groups: list[ChannelGroup], shapes: Mapping[str, tuple[int, ...]],
                 rates: Mapping[str, float], total: float, target: str):
        self.target = target
        self.total0 = float(total)
        self.shapes0 = {name: tuple(shape) for name, shape in shapes.items()}
        self.sizes = {name: list(shape) for name, shape in shapes.items()}
        self.rates = dict(rates)
        # per group, per (parameter, dim): the (local, root) index pairs. One local index may serve several roots
        # (a tensor concatenated with itself) and goes as soon as any of them does; several groups may cut the same
        # dimension (the halves of a concatenation), so removals are counted per local index across groups.
        # numpy, not torch: the planner asks thousands of small questions, and torch's per-call cost dominated them.
        self._pieces: list[dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]]] = []
        for group in groups:
            pieces: dict[tuple[str, int], list[tuple[np.ndarray, np.ndarray]]] = {}
            for piece in group.slices:
                pieces.setdefault((piece.param, piece.dim), []).append((_indices(piece.local), _indices(piece.root)))
            self._pieces.append(pieces)
        self._removed = [np.zeros(g.channels, dtype=bool) for g in groups]
        self._cut = {key: np.zeros(self.shapes0[key[0]][key[1]], dtype=np.int64)
                     for pieces in self._pieces for key in pieces}
        self._current: list[dict[tuple[str, int], np.ndarray] | None] = [None] * len(groups)  # marks of _removed
        self.cost = self.total0

    def _element_cost(self, name: str, sizes: list[int]) -> float:
        return self.rates.get(name, 0.0) * math.prod(sizes)

    def removal(self, group: int, channels: torch.Tensor, commit: bool = False, restore: bool = False) -> float:
        """Cost saved by removing `channels` (root indices) of `group` (negative with `restore`: putting them
        back); `commit` applies it."""
        removed = self._removed[group].copy()
        removed[_indices(channels)] = not restore
        current = self._current_marks(group)
        new_sizes: dict[str, list[int]] = {}
        new_cuts: dict[tuple[str, int], np.ndarray] = {}
        new_marks: dict[tuple[str, int], np.ndarray] = {}
        for (param, dim), pairs in self._pieces[group].items():
            marks = self._marks(pairs, removed, self._cut[(param, dim)].size)
            cut = self._cut[(param, dim)] - current[(param, dim)] + marks
            new_cuts[(param, dim)], new_marks[(param, dim)] = cut, marks
            sizes = new_sizes.setdefault(param, list(self.sizes[param]))
            sizes[dim] = self.shapes0[param][dim] - int(np.count_nonzero(cut))
        saved = sum(self._element_cost(p, self.sizes[p]) - self._element_cost(p, s) for p, s in new_sizes.items())
        if commit:
            self.sizes.update(new_sizes)
            self._cut.update(new_cuts)
            self._current[group] = new_marks
            self._removed[group] = removed
            self.cost -= saved
        return saved

    def _current_marks(self, group: int) -> dict[tuple[str, int], np.ndarray]:
        current = self._current[group]
        if current is None:
            current = {key: self._marks(pairs, self._removed[group], self._cut[key].size)
                       for key, pairs in self._pieces[group].items()}
            self._current[group] = current
        return current

    @staticmethod
    def _marks(pairs: list[tuple[np.ndarray, np.ndarray]], removed: np.ndarray, size: int) -> np.ndarray:
        """1 for every local index this group's removed roots take away, else 0."""
        marks = np.zeros(size, dtype=np.int64)
        for local, root in pairs:
            marks[local[removed[root]]] = 1
        return marks

    def reduction(self, extra_saving: float = 0.0) -> float:
        """The fraction of the dense cost removed, counting `extra_saving` (a removal not committed) as well."""
        return (self.total0 - self.cost + extra_saving) / self.total0 if self.total0 else 0.0


class ChannelCount:
    """Cost of the model as channels are removed, counted in channels: torch-pruning's meaning of a ratio.

    Args:
        groups: the channel groups.
        target: the name of the budget target it counts for, for messages.
    """

    def __init__(self, groups: Sequence[ChannelGroup], target: str = "channels"):
        self.target = target
        self.total0 = float(sum(g.channels for g in groups))
        self.cost = self.total0

    def removal(self, group: int, channels: torch.Tensor, commit: bool = False, restore: bool = False) -> float:
        """Channels saved by removing `channels` of `group` (negative with `restore`); `commit` applies it."""
        saved = float((-1 if restore else 1) * len(channels))
        if commit:
            self.cost -= saved
        return saved

    def reduction(self, extra_saving: float = 0.0) -> float:
        """The fraction of all channels removed, counting `extra_saving` as well."""
        return (self.total0 - self.cost + extra_saving) / self.total0 if self.total0 else 0.0


def _indices(index: Any) -> np.ndarray:
    """An index tensor (or sequence) as a numpy integer array."""
    if isinstance(index, torch.Tensor):
        return index.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(index, dtype=np.int64)
