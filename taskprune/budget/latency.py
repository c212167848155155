"""The latency budget: a latency model over channel groups from a measured (or given) table, and its solver.

`LatencyModel` predicts the model's latency as channels are removed: every measured layer costs
`base * r_in(c_in) * r_out(c_out)` (its relative times at the current input and output widths), and a group's
channels change the widths of the layers it touches, through the same parameter slices the params cost model
uses. Layers that are not measured (activations, concatenations, upsampling) are assumed to shrink in proportion,
so the predicted fraction of the dense latency is the measured layers' sum over its dense value.

The solver follows HALP (Shen et al., NeurIPS 2022): keep the most importance per second saved. It removes units
of the table's finest measured step (under round_to="auto" half the multiple the table is measured in, the
device's but at most 8, so that the knapsack sees both the staircase and the layers that do not follow it;
round_to's multiple otherwise), cheapest importance per second first; the saving of a unit depends on the
neighbouring groups' widths, so priorities are re-evaluated lazily when popped.
"""

from __future__ import annotations

import copy
import heapq
import math

import numpy as np
import torch

from ..groups import ChannelGroup
from ..latency import LatencyTable
from ..layers import get_layer_kind
from .params import Unit, units_of
from .plan import UnreachableBudget, budget_fix

__all__ = ["RELATIVE_TOLERANCE", "LatencyModel", "latency_fix", "plan_latency"]

RELATIVE_TOLERANCE = 0.05  # the latency target is met within 5% of the requested remaining latency


class LatencyModel:
    """Predicted latency as channels of groups are removed, from a `LatencyTable`.

    Args:
        groups: the channel groups.
        table: the measured (or given) latency table of the unpruned model.
    """

    def __init__(self, groups: list[ChannelGroup], table: LatencyTable):
        self.table = table
        self.width = {name: [layer.in_full, layer.out_full] for name, layer in table.layers.items()}
        self._tied = {name: get_layer_kind(layer.kind).tied for name, layer in table.layers.items()}
        # per group: (layer, side 0=in / 1=out, layer channels per root channel)
        self._touches: list[list[tuple[str, int, torch.Tensor]]] = []
        for group in groups:
            touches = []
            for piece in group.slices:
                layer_name, _, attr = piece.param.rpartition(".")
                layer = table.layers.get(layer_name)
                if layer is None or attr != "weight":
                    continue
                side = get_layer_kind(layer.kind).side(piece.dim)
                touches.append((layer_name, side, torch.bincount(piece.root, minlength=group.channels)))
            self._touches.append(touches)
        self.dense = self._sum(self.width)
        self.current = self.dense

    def _layer(self, name: str, width: list[int]) -> float:
        layer = self.table.layers[name]
        c_in, c_out = width
        if self._tied[name]:
            c_in = c_out
        return layer.at(c_in, c_out, self.table.resolution)

    def _sum(self, widths: dict[str, list[int]]) -> float:
        return sum(self._layer(name, width) for name, width in widths.items())

    def copy(self) -> LatencyModel:
        """An independent copy of the current widths (sharing the table)."""
        twin = copy.copy(self)
        twin.width = {name: list(width) for name, width in self.width.items()}
        return twin

    def removal(self, group: int, channels: torch.Tensor, commit: bool = False, restore: bool = False) -> float:
        """Seconds saved by removing `channels` (root indices) of `group` (negative with `restore`: putting
        them back); `commit` applies it."""
        sign = -1 if restore else 1
        changed: dict[str, list[int]] = {}
        for name, side, multiplicity in self._touches[group]:
            width = changed.setdefault(name, list(self.width[name]))
            width[side] -= sign * int(multiplicity[channels].sum())
        saved = sum(self._layer(n, self.width[n]) - self._layer(n, w) for n, w in changed.items())
        if commit:
            self.width.update(changed)
            self.current -= saved
        return saved

    def fraction(self) -> float:
        """Predicted latency now, as a fraction of the dense latency."""
        return self.current / self.dense if self.dense else 1.0

    def predict(self, plan: dict[int, list[int]]) -> float:
        """Predicted fraction of the dense latency after `plan`, without changing this model."""
        trial = self.copy()
        for index, channels in plan.items():
            trial.removal(index, torch.as_tensor(channels, dtype=torch.long), commit=True)
        return trial.fraction()


def plan_latency(groups: list[ChannelGroup], scores: list[torch.Tensor], model: LatencyModel, fraction: float,
                 max_layer_ratio: float, round_to: int, strict: bool = True,
                 comparable: bool = False) -> dict[int, list[int]]:
    """Channels to remove per group so that the predicted latency falls to `fraction` of dense.

    A multiple-choice knapsack (how many units each group gives up) minimises the importance lost for the
    latency to save, with each group's savings evaluated at its neighbours' widths from the previous solution
    (three rounds, HALP's augmented knapsack); greedy steps by importance per second then close what the
    coupling between neighbours leaves over.

    Scores are divided by their group's mean, so that every group's average channel is worth the same, unless
    `comparable` (gradient criteria: estimates of the loss change, in one unit across groups, as in HALP); then
    by the mean over all groups, which keeps the differences between groups.

    Raises:
        UnreachableBudget: (`strict`) the caps leave too little to remove; the message says how far the latency
            can fall and what to change. Without `strict`, the plan goes as far as the caps allow.
    """
    units, lost = {}, {}
    prunable = {g.index: torch.nan_to_num(s.detach().float().cpu(), nan=0.0).abs()
                for g, s in zip(groups, scores, strict=True) if g.prunable and g.channels >= 2}
    overall = float(torch.cat(list(prunable.values())).mean()) if prunable else 0.0
    for group in groups:
        if group.index not in prunable:
            continue
        score = prunable[group.index]
        mean = overall if comparable else float(score.mean())
        normalised = score / mean if mean > 0 else torch.zeros_like(score)
        units[group.index] = units_of(group, torch.argsort(normalised, stable=True), max_layer_ratio, round_to)
        lost[group.index] = [float(normalised[u.channels].sum()) for u in units[group.index]]
    taken = dict.fromkeys(units, 0)
    for _ in range(3):
        taken = _knapsack(model, units, lost, taken, (1 - fraction) * model.dense)
    for index, count in taken.items():
        for unit in units[index][:count]:
            model.removal(index, unit.channels, commit=True)
    queue = [(0.0, i) for i, n in taken.items() if n < len(units[i])]
    heapq.heapify(queue)
    while queue and model.fraction() > fraction:
        _, index = heapq.heappop(queue)
        unit = units[index][taken[index]]
        saved = model.removal(index, unit.channels)
        priority = lost[index][taken[index]] / saved if saved > 0 else math.inf
        if queue and priority > queue[0][0]:
            heapq.heappush(queue, (priority, index))  # stale: the neighbours changed its saving
            continue
        model.removal(index, unit.channels, commit=True)
        taken[index] += 1
        if taken[index] < len(units[index]):
            heapq.heappush(queue, (priority, index))
    _give_back(model, units, lost, taken, fraction)
    if strict and model.fraction() > fraction * (1 + RELATIVE_TOLERANCE):
        raise UnreachableBudget(
            f"cannot bring the latency down to {fraction:.1%} of dense with round_to={round_to}, max_layer_ratio="
            f"{max_layer_ratio} and the protected output layers: the measured layers reach {model.fraction():.1%}; "
            + latency_fix(1 - fraction, 1 - model.fraction(), max_layer_ratio, finer=round_to > 1),
            closest=1 - model.fraction(), round_to=round_to)
    return {index: sorted(int(c) for unit in units[index][:n] for c in unit.channels)
            for index, n in taken.items() if n}


def latency_fix(ratio: float, closest: float, max_layer_ratio: float, finer: bool) -> str:
    """What to change when a latency reduction of `ratio` cannot be met and `closest` is the reduction of the
    nearest plan (predicted or measured). Never a ratio at or below 0: when no plan runs faster than dense, no
    lower ratio helps, so the advice is what can."""
    if closest >= 0.001:  # "lower ratio to 0.001" is still a ratio prune() accepts
        return budget_fix(ratio, closest, max_layer_ratio, finer)
    fixes = [f"raise max_layer_ratio (now {max_layer_ratio:g})", "protect fewer layers"]
    if finer:
        fixes.append("pass a finer round_to (round_to=None does not round)")
    return (f"no plan under these caps runs faster than dense ({1 - closest:.1%} of it at best), so no lower ratio "
            f"helps: {', '.join(fixes)}; if the latency table was measured under another load than now, clear it "
            "(taskprune.latency.clear_cache()) and prune again on an otherwise idle machine")


def _give_back(model: LatencyModel, units: dict[int, list[Unit]], lost: dict[int, list[float]],
               taken: dict[int, int], fraction: float) -> None:
    """Put back the most important last units that still fit under `fraction` (the knapsack overshoots when its
    separable savings overestimate the coupling)."""
    while True:
        fits = [(lost[i][n - 1], i) for i, n in taken.items()
                if n and model.fraction() - model.removal(i, units[i][n - 1].channels, restore=True) / model.dense
                <= fraction]
        if not fits:
            return
        _, index = max(fits)
        taken[index] -= 1
        model.removal(index, units[index][taken[index]].channels, commit=True, restore=True)


def _knapsack(model: LatencyModel, units: dict[int, list[Unit]], lost: dict[int, list[float]],
              around: dict[int, int], needed: float, bins: int = 2000) -> dict[int, int]:
    """Units per group that save at least `needed` seconds with the least importance lost, each group's savings
    taken with the other groups at `around` (dynamic programming over the saving, in `bins` steps)."""
    base = model.copy()
    for index, count in around.items():
        for unit in units[index][:count]:
            base.removal(index, unit.channels, commit=True)
    scale = bins / needed if needed > 0 else 0.0
    best = np.zeros(bins + 1)
    best[1:] = np.inf  # best[b]: least importance lost saving at least b bins
    choices, saving_bins = {}, {}
    for index, steps in units.items():
        alone = base.copy()
        for unit in reversed(steps[:around[index]]):
            alone.removal(index, unit.channels, commit=True, restore=True)
        savings, lost_sum, saved = [0], [0.0], 0.0
        for unit, unit_lost in zip(steps, lost[index], strict=True):
            saved += alone.removal(index, unit.channels, commit=True)
            savings.append(max(0, round(saved * scale)))
            lost_sum.append(lost_sum[-1] + unit_lost)
        options = np.stack([best[np.maximum(np.arange(bins + 1) - s, 0)] + v
                            for s, v in zip(savings, lost_sum, strict=True)])
        choices[index] = options.argmin(0)
        saving_bins[index] = savings
        best = options.min(0)
    taken, remaining = {}, bins
    if not math.isfinite(best[bins]):
        return dict(around)  # the caps cannot save that much: the greedy steps go as far as they can
    for index in reversed(list(units)):
        count = int(choices[index][remaining])
        taken[index] = count
        remaining = max(0, remaining - saving_bins[index][count])
    return taken
