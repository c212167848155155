"""From channel scores to a pruning plan that meets a params / MACs / channels budget.

Scores are normalised within each group (divided by the group's mean), so layers compete on how unimportant a
channel is relative to its neighbours, not on the raw scale of their weights or gradients. Channels are then taken
globally from the least important up, in units that keep every pruned group a multiple of `round_to`, while an
exact cost model (each parameter's size is the product of the channel counts along its dimensions) tracks the
reduction reached, until it equals the requested ratio.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..groups import ChannelGroup
from .plan import UnreachableBudget, budget_fix

__all__ = ["BUDGET_TOLERANCE", "TARGETS", "CostModel", "Unit", "plan_pruning", "units_of"]

TARGETS = ("params", "macs", "channels", "latency")
BUDGET_TOLERANCE = 0.01  # params / MACs / channels: the reduction is within one percentage point of the request
# The plan aims this close to the request; the rest of the 1-point promise covers what the estimate leaves out.
_TOLERANCE = 0.003


class CostModel:
    """Cost of the model as channels are removed: params or MACs (sum over parameters of rate * size) or channels.

    Args:
        groups: the channel groups.
        shapes: parameter name -> shape of every parameter of the model.
        rates: parameter name -> cost of one element (1 for params; MACs per weight element for macs).
        total: the cost of the whole unpruned model (what the reduction is relative to).
        target: "params", "macs" or "channels".
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
        self.channels0 = sum(g.channels for g in groups)
        self.cost = self.total0

    @classmethod
    def of(cls, groups: list[ChannelGroup], profile: Any, target: str) -> CostModel:
        """The exact cost model of a model for `target` ("params", "macs" or "channels"), from its
        `taskprune.graph.ModelProfile` (parameter shapes and counts, MACs per parameter element)."""
        if target == "macs":
            return cls(groups, profile.shapes, profile.macs_rates(), profile.macs, target)
        return cls(groups, profile.shapes, dict.fromkeys(profile.shapes, 1.0), profile.params, target)

    def _element_cost(self, name: str, sizes: list[int]) -> float:
        return self.rates.get(name, 0.0) * math.prod(sizes)

    def removal(self, group: int, channels: torch.Tensor, commit: bool = False, restore: bool = False) -> float:
        """Cost saved by removing `channels` (root indices) of `group` (negative with `restore`: putting them
        back); `commit` applies it."""
        sign = -1 if restore else 1
        if self.target == "channels":
            saved = float(sign * len(channels))
        else:
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
        if commit:
            self._removed[group][_indices(channels)] = not restore
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
        base = self.channels0 if self.target == "channels" else self.total0
        return (self.total0 - self.cost + extra_saving) / base if base else 0.0


def _indices(index: Any) -> np.ndarray:
    """An index tensor (or sequence) as a numpy integer array."""
    if isinstance(index, torch.Tensor):
        return index.detach().cpu().numpy().astype(np.int64, copy=False)
    return np.asarray(index, dtype=np.int64)


@dataclass(frozen=True)
class Unit:
    """A removal step: these root channels of group `group` go together (a multiple of round_to)."""

    group: int
    channels: torch.Tensor


def units_of(group: ChannelGroup, order: torch.Tensor, max_layer_ratio: float, round_to: int) -> list[Unit]:
    """Removal steps for one group, least important first, each leaving a multiple of `round_to` channels."""
    n = group.channels
    max_remove = min(int(math.floor(max_layer_ratio * n)), n - 1)
    keep_min = max(round_to, math.ceil((n - max_remove) / round_to) * round_to)
    removable = n - keep_min
    sizes = []
    if removable > 0 and n % round_to:
        sizes.append(n % round_to)
    while sum(sizes) + round_to <= removable:
        sizes.append(round_to)
    units, start = [], 0
    for size in sizes:
        units.append(Unit(group.index, order[start:start + size]))
        start += size
    return units


def plan_pruning(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: CostModel, ratio: float,
                 max_layer_ratio: float, round_to: int | None, per_group: bool = True) -> dict[int, list[int]]:
    """Channels to remove per group index so that `cost.reduction()` reaches `ratio` within a point. Each group's
    scores are divided by their mean unless `per_group` is False (the criterion normalised them itself).

    Raises:
        UnreachableBudget: the caps (max_layer_ratio, protected outputs, round_to) leave no plan within a point of
            `ratio`; the message says the closest plan found and what to change (`prune` adds which groups are
            kept whole, `with_kept_whole`).
    """
    step = int(round_to or 1)
    queue: list[tuple[float, int, int]] = []
    units: dict[int, list[Unit]] = {}
    normalised: dict[int, torch.Tensor] = {}
    for group, score in zip(groups, scores, strict=True):
        if not group.prunable or group.channels < 2:
            continue
        score = torch.nan_to_num(score.detach().float().cpu(), nan=0.0)
        mean = float(score.abs().mean()) if per_group else 1.0
        normalised[group.index] = score / mean if mean > 0 else torch.zeros_like(score)
        order = torch.argsort(normalised[group.index], stable=True)
        units[group.index] = units_of(group, order, max_layer_ratio, step)
        if units[group.index]:
            _push(queue, normalised[group.index], units[group.index][0], 0)
    taken = dict.fromkeys(units, 0)
    while queue and cost.reduction() < ratio - _TOLERANCE:
        _, index, position = heapq.heappop(queue)
        unit = units[index][position]
        if cost.reduction(cost.removal(index, unit.channels)) > ratio + _TOLERANCE:
            continue  # this group's next step overshoots; smaller steps elsewhere may still fit
        cost.removal(index, unit.channels, commit=True)
        taken[index] += 1
        if position + 1 < len(units[index]):
            _push(queue, normalised[index], units[index][position + 1], position + 1)
    _refine(cost, units, taken, ratio)
    _trade(cost, units, taken, normalised, ratio)
    _refine(cost, units, taken, ratio)
    if abs(cost.reduction() - ratio) > 3 * _TOLERANCE:
        capped = any(taken[i] == len(units[i]) for i in units if units[i])  # a group took all max_layer_ratio allows
        raise UnreachableBudget(
            f"cannot remove {ratio:.1%} of {cost.target} with round_to={round_to}, max_layer_ratio={max_layer_ratio} "
            f"and the protected output layers: the closest plan removes {cost.reduction():.1%}; "
            + budget_fix(ratio, cost.reduction(), max_layer_ratio, finer=step > 1, capped=capped),
            closest=cost.reduction(), round_to=step)
    return {index: sorted(int(c) for unit in units[index][:count] for c in unit.channels)
            for index, count in taken.items() if count}


def _trade(cost: CostModel, units: dict[int, list[Unit]], taken: dict[int, int],
           normalised: dict[int, torch.Tensor], ratio: float, candidates: int = 8, most: int = 8) -> None:
    """When single steps and swaps cannot close the gap (a transformer's embedding coupled to every block, in
    coarse steps; two coupled groups of a tiny model), trade several: move one of the `candidates` groups with the
    largest steps by up to `most` steps either way, then let the others follow, one step at a time, towards the
    request. Keep the trade that lands closest, if it is closer than the plan."""
    gap = abs(cost.reduction() - ratio)
    if gap <= _TOLERANCE:
        return
    sizes = {i: abs(cost.removal(i, units[i][n].channels) if n < len(units[i]) else
                    cost.removal(i, units[i][n - 1].channels, restore=True)) for i, n in taken.items() if units[i]}
    best: tuple[float, list[tuple[int, int]]] | None = None
    for index in sorted(sizes, key=sizes.__getitem__, reverse=True)[:candidates]:
        for steps in range(-min(most, taken[index]), min(most, len(units[index]) - taken[index]) + 1):
            if not steps:
                continue
            _take(cost, units, taken, index, steps)
            moves = [(index, steps)] + _follow(cost, units, taken, normalised, ratio, index)
            trial = abs(cost.reduction() - ratio)
            if trial < gap and (best is None or trial < best[0]):
                best = (trial, moves)
            for group, count in reversed(moves):
                _take(cost, units, taken, group, -count)
    for group, count in best[1] if best is not None else []:
        _take(cost, units, taken, group, count)


def _take(cost: CostModel, units: dict[int, list[Unit]], taken: dict[int, int], index: int, steps: int) -> None:
    """Commit `steps` more steps of group `index` (negative: give them back)."""
    for _ in range(abs(steps)):
        if steps < 0:
            taken[index] -= 1
        cost.removal(index, units[index][taken[index]].channels, commit=True, restore=steps < 0)
        if steps > 0:
            taken[index] += 1


def _follow(cost: CostModel, units: dict[int, list[Unit]], taken: dict[int, int],
            normalised: dict[int, torch.Tensor], ratio: float, moved: int) -> list[tuple[int, int]]:
    """Step the groups other than `moved` towards the request while a step lands closer: above it, give back the
    most important last steps first; below it, take the least important next steps first."""
    moves: list[tuple[int, int]] = []
    while abs(cost.reduction() - ratio) > _TOLERANCE:
        above = cost.reduction() > ratio
        # the step each other group would give back (above) or take (below), and how important it is
        steps = {i: units[i][n - 1 if above else n] for i, n in taken.items()
                 if i != moved and (n > 0 if above else n < len(units[i]))}
        options = sorted(((-1 if above else 1) * float(normalised[i][unit.channels].mean()), i)
                         for i, unit in steps.items())
        for _, index in options:
            step = steps[index].channels
            if abs(cost.reduction(cost.removal(index, step, restore=above)) - ratio) < abs(cost.reduction() - ratio):
                _take(cost, units, taken, index, -1 if above else 1)
                moves.append((index, -1 if above else 1))
                break
        else:
            return moves
    return moves


def _refine(cost: CostModel, units: dict[int, list[Unit]], taken: dict[int, int], ratio: float,
            max_moves: int = 16) -> None:
    """Coarse models, where whole steps overshoot: add a step, give one back, or swap one group's step for
    another's, while that lands closer to the request."""
    for _ in range(max_moves):
        gap = abs(cost.reduction() - ratio)
        if gap <= _TOLERANCE:
            return
        adds = {i: cost.removal(i, units[i][n].channels) for i, n in taken.items() if n < len(units[i])}
        backs = {i: cost.removal(i, units[i][n - 1].channels, restore=True) for i, n in taken.items() if n}
        moves: list[tuple[tuple[int, ...], tuple[int, ...], float]] = [((i,), (), s) for i, s in adds.items()]
        moves += [((), (i,), s) for i, s in backs.items()]
        moves += [((a,), (b,), sa + sb) for a, sa in adds.items() for b, sb in backs.items() if a != b]
        best = min(moves, key=lambda move: abs(cost.reduction(move[2]) - ratio), default=None)
        if best is None or abs(cost.reduction(best[2]) - ratio) >= gap:
            return
        for index in best[1]:
            taken[index] -= 1
            cost.removal(index, units[index][taken[index]].channels, commit=True, restore=True)
        for index in best[0]:
            cost.removal(index, units[index][taken[index]].channels, commit=True)
            taken[index] += 1


def _push(queue: list[tuple[float, int, int]], normalised: torch.Tensor, unit: Unit, position: int) -> None:
    heapq.heappush(queue, (float(normalised[unit.channels].mean()), unit.group, position))
