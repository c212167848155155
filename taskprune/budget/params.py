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
from dataclasses import dataclass

import torch

from ..groups import ChannelGroup
from .cost import Cost
from .plan import UnreachableBudget, budget_fix

__all__ = ["BUDGET_TOLERANCE", "Unit", "plan_pruning", "units_of"]

BUDGET_TOLERANCE = 0.01  # params / MACs / channels: the reduction is within one percentage point of the request
# The plan aims this close to the request; the rest of the 1-point promise covers what the estimate leaves out.
_TOLERANCE = 0.003


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


def plan_pruning(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: Cost, ratio: float,
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


def _trade(cost: Cost, units: dict[int, list[Unit]], taken: dict[int, int],
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


def _take(cost: Cost, units: dict[int, list[Unit]], taken: dict[int, int], index: int, steps: int) -> None:
    """Commit `steps` more steps of group `index` (negative: give them back)."""
    for _ in range(abs(steps)):
        if steps < 0:
            taken[index] -= 1
        cost.removal(index, units[index][taken[index]].channels, commit=True, restore=steps < 0)
        if steps > 0:
            taken[index] += 1


def _follow(cost: Cost, units: dict[int, list[Unit]], taken: dict[int, int],
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


def _refine(cost: Cost, units: dict[int, list[Unit]], taken: dict[int, int], ratio: float,
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
