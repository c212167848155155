"""The planning step of `prune`: resolve `round_to="auto"`, then plan params / MACs / channels on the exact cost
model, or latency on the measured table, measured end to end and corrected while it misses.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import latency
from .budget import CostModel, plan_pruning
from .graph import ChannelGroup
from .latency_budget import RELATIVE_TOLERANCE, LatencyModel, plan_latency

__all__ = ["PlanOutcome", "plan_for_target"]

_AIM_TOLERANCE = 0.025  # passes go on (up to _MAX_PASSES) until one lands within 2.5%: the middle of the band
_MAX_PASSES = 6
_REPEATS = 15  # end-to-end rounds per measured pass
_FINER_GAIN = 0.02  # round_to="auto" takes the finer multiple's plan only if it is predicted 2% faster


@dataclass
class PlanOutcome:
    """A plan and what planning found: the channel multiple used, the measured latency reduction, notes."""

    plan: dict[int, list[int]]
    round_to: int
    reached: float | None = None
    notes: list[str] = field(default_factory=list)


def plan_for_target(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: CostModel, target: str,
                    ratio: float, max_layer_ratio: float, round_to: int | str | None, model: nn.Module,
                    example_inputs: Any, pruned_copy: Callable[[dict[int, list[int]]], nn.Module],
                    progress: bool = False, comparable: bool = False) -> PlanOutcome:
    """The planning step of `prune`: resolve `round_to="auto"`, then plan params / MACs / channels with the
    exact cost model, or latency on the measured table (measured end to end, corrected if it misses).

    `pruned_copy(plan)` returns a pruned copy of `model` (the dense one is left as it is). `comparable`: the
    scores are in one unit across groups (see `plan_latency`). Under torch.distributed every rank takes rank 0's
    plan: a device probe or a latency measurement can come out differently on each rank, and replicas must not.
    """
    return _from_rank_zero(_plan_here(groups, scores, cost, target, ratio, max_layer_ratio, round_to, model,
                                      example_inputs, pruned_copy, progress, comparable))


def _from_rank_zero(outcome: PlanOutcome) -> PlanOutcome:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return outcome
    box: list[Any] = [outcome]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _plan_here(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: CostModel, target: str,
               ratio: float, max_layer_ratio: float, round_to: int | str | None, model: nn.Module,
               example_inputs: Any, pruned_copy: Callable[[dict[int, list[int]]], nn.Module], progress: bool,
               comparable: bool) -> PlanOutcome:
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    alignment = latency.device_alignment(device) if round_to == "auto" else int(round_to or 1)
    if target == "latency":
        table = latency.measure_table(model, example_inputs, alignment=alignment, progress=progress)
        unit = table.resolution if round_to == "auto" else alignment
        return _plan_measured(groups, scores, table, ratio, max_layer_ratio, unit, model, example_inputs,
                              pruned_copy, comparable)
    if round_to != "auto":
        return PlanOutcome(plan_pruning(groups, scores, cost, ratio, max_layer_ratio, alignment), alignment)
    return _plan_auto(groups, scores, cost, ratio, max_layer_ratio, alignment, model, example_inputs)


def _plan_auto(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: CostModel, ratio: float,
               max_layer_ratio: float, alignment: int, model: nn.Module, example_inputs: Any) -> PlanOutcome:
    """Plan in steps of the device's multiple and of the next finer multiple that meets the budget, and keep the
    finer plan only if it is predicted at least `_FINER_GAIN` faster: by the table from `latency.override` if there
    is one, else by MACs. Steps of 16 can force a params budget off the narrow, high-resolution layers where the
    time is (DrivingNet-m at 40% fewer parameters: 1.33x in steps of 16, 1.61x in steps of 8).

    A plan predicted slower than dense is never returned: ValueError says so instead.
    """
    multiples = list(dict.fromkeys(m for m in (alignment, 16, 8, 4, 2, 1) if m <= alignment and alignment % m == 0))
    # a MACs table costs a forward: only needed when there is a second multiple to compare with
    table = latency.injected_table() or (latency.macs_table(model, example_inputs) if len(multiples) > 1 else None)
    error: ValueError | None = None
    slower: list[str] = []
    candidates: list[tuple[float, int, dict[int, list[int]], CostModel]] = []
    for multiple in multiples:
        attempt = copy.deepcopy(cost)
        try:
            plan = plan_pruning(groups, scores, attempt, ratio, max_layer_ratio, multiple)
        except ValueError as failed:
            error = error or failed
            continue
        predicted = LatencyModel(groups, table).predict(plan) if table is not None else 1.0
        if predicted > 1.0:
            slower.append(f"round_to={multiple}: {predicted:.2f}x the dense latency")
            continue
        candidates.append((predicted, multiple, plan, attempt))
        if len(candidates) == 2:
            break
    if not candidates:
        if slower:
            raise ValueError(f"round_to='auto': every plan that removes {ratio:.1%} of {cost.target} is predicted "
                             f"slower than the dense model ({'; '.join(slower)}); change ratio, or pass "
                             "round_to=None to accept a slower model")
        raise error or ValueError("no channel multiple meets the budget")
    chosen = candidates[0]
    if len(candidates) == 2 and candidates[1][0] < candidates[0][0] * (1 - _FINER_GAIN):
        chosen = candidates[1]
    predicted, multiple, plan, attempt = chosen
    cost.__dict__.update(attempt.__dict__)
    outcome = PlanOutcome(plan, multiple)
    if multiple != alignment:
        coarse = [c[0] for c in candidates if c[1] == alignment]
        why = (f"predicted {predicted:.1%} of the dense {'latency' if latency.injected_table() else 'MACs'}, "
               f"against {coarse[0]:.1%} in steps of {alignment}" if coarse
               else f"the budget cannot be met in steps of {alignment}")
        outcome.notes.append(f"round_to='auto': this device runs multiples of {alignment} channels fastest; "
                             f"steps of {multiple} were used ({why})")
    return outcome


def _plan_measured(groups: list[ChannelGroup], scores: list[torch.Tensor], table: latency.LatencyTable,
                   ratio: float, max_layer_ratio: float, alignment: int, model: nn.Module, example_inputs: Any,
                   pruned_copy: Callable[[dict[int, list[int]]], nn.Module],
                   comparable: bool = False) -> PlanOutcome:
    """Solve on the table, measure the pruned copy against the dense model, and re-aim while it misses by more
    than 2.5% (a plan at the edge of the 5% band falls outside it on the next measurement as often as not); keep
    the closest pass."""
    wanted = 1 - ratio
    aim = wanted
    tried: list[tuple[float, float, PlanOutcome]] = []
    points: list[tuple[float, float]] = []  # (predicted, measured) fraction of dense, per pass
    capped = False
    for attempt in range(_MAX_PASSES):
        predictor = LatencyModel(groups, table)
        plan = plan_latency(groups, scores, predictor, aim, max_layer_ratio, alignment, strict=attempt == 0,
                            comparable=comparable)
        predicted = predictor.fraction()
        pruned = pruned_copy(plan)
        measured = latency.latency_ratios([model, pruned], example_inputs, repeats=_REPEATS)[1]
        if abs(measured / wanted - 1) <= RELATIVE_TOLERANCE:
            # a measurement that lands in the band may be lucky noise (the shared machine's load): the pass is
            # accepted on the mean of it and a second, independent measurement
            second = latency.latency_ratios([model, pruned], example_inputs, repeats=_REPEATS)[1]
            measured = (measured + second) / 2
        tried.append((abs(measured / wanted - 1), measured, PlanOutcome(plan, alignment, reached=1 - measured)))
        capped = predicted > aim * (1 + RELATIVE_TOLERANCE)
        if tried[-1][0] <= _AIM_TOLERANCE or (capped and measured > wanted):
            break  # met, or the caps stop the solver short of where it aimed
        points.append((predicted, measured))
        aim = _next_aim(points, wanted)
    error, measured, outcome = min(tried, key=lambda t: t[0])
    if error > RELATIVE_TOLERANCE:
        why = ("max_layer_ratio, the protected outputs and the alignment stop the solver there" if capped else
               "the per-layer table mispredicts this model (time in untimed ops, other processes' load, or the "
               "allocator: see latency.steady_allocator)")
        outcome.notes.append(f"latency: asked for {wanted:.1%} of dense, measured {measured:.1%} after "
                             f"{len(tried)} passes: {why}")
    return outcome


def _next_aim(points: list[tuple[float, float]], wanted: float) -> float:
    """Where to aim the prediction next: through the last two (predicted, measured) passes when they differ
    (a secant also absorbs a fixed offset), else by the last pass's measured/predicted factor (bounded 0.5-2)."""
    predicted, measured = points[-1]
    if len(points) >= 2:
        before_predicted, before_measured = points[-2]
        slope = (measured - before_measured) / (predicted - before_predicted) if predicted != before_predicted else 0
        if slope > 0.1:
            return min(1.0, max(0.02, predicted + (wanted - measured) / slope))
    factor = min(max(measured / predicted, 0.5), 2.0) if predicted > 0 else 1.0
    return min(1.0, max(0.02, wanted / factor))


