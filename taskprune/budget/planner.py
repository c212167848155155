"""The planning step of `prune`: from a `PlanRequest` (groups, scores, the budget, what the device runs fastest) to
a `Plan` (the channels to remove per group), for every target.

- params / channels: the exact cost model (`params.plan_pruning`).
- MACs: the same, then the pruned copy's MACs are counted and the aim corrected while the estimate misses.
- latency: the latency table (`latency.plan_latency`), then the pruned copy is timed end to end and the aim
  corrected while it misses (`passes.py`).
- round_to="auto": the device's multiple first, finer multiples down to 1 when the budget needs them, and the
  finer plan when it is predicted faster.

Nothing here measures the device or builds a model: what must be measured comes in the request as functions.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .._runtime import world
from ..groups import ChannelGroup
from ..latency import LatencyTable
from .latency import LatencyModel
from .params import CostModel, UnreachableBudget, plan_pruning
from .passes import plan_measured
from .plan import Plan, Removals

__all__ = ["Plan", "PlanRequest", "Removals", "finer_multiples", "plan"]

_FINER_GAIN = 0.02  # round_to="auto" takes the finer multiple's plan only if it is predicted 2% faster
_MAX_MACS_PASSES = 4
_MACS_TOLERANCE = 0.005


@dataclass(frozen=True)
class PlanRequest:
    """Everything the planner needs, computed by the caller.

    Attributes:
        groups, scores: the channel groups and one score per channel (higher: keep).
        cost: the exact cost model of the dense model (copied, never changed).
        target, ratio, max_layer_ratio, round_to: as given to `prune`.
        alignment: the device's channel multiple (what round_to="auto" starts from), or round_to's multiple.
        comparable: the scores are in one unit across groups (see `Criterion`).
        normalised: the criterion normalised each group's scores itself: the planner uses them as they are.
        table: target="latency": the latency table; otherwise a table given by the user that round_to="auto"
            compares plans by.
        macs_table: a table that costs layers by MACs: what round_to="auto" compares plans by without `table`.
        timer: target="latency": `timer(removals)` builds the pruned copy once and returns a function that times it
            against the dense model (fraction of the dense latency) each time it is called.
        counter: target="macs": `counter(removals)`, the MACs reduction of the pruned copy, counted.
    """

    groups: Sequence[ChannelGroup]
    scores: Sequence[torch.Tensor]
    cost: CostModel
    target: str
    ratio: float
    max_layer_ratio: float
    round_to: int | str | None
    alignment: int
    comparable: bool = False
    normalised: bool = False
    table: LatencyTable | None = None
    macs_table: LatencyTable | None = None
    timer: Callable[[Removals], Callable[[], float]] | None = None
    counter: Callable[[Removals], float] | None = None


def plan(request: PlanRequest) -> Plan:
    """The plan for `request`. Under torch.distributed every rank takes rank 0's plan: a device probe or a latency
    measurement can come out differently on each rank, and replicas must not.

    Raises:
        UnreachableBudget: no plan meets the budget within its tolerance (the message names the fix).
    """
    return _from_rank_zero(_plan(request))


def _plan(request: PlanRequest) -> Plan:
    groups, scores = list(request.groups), list(request.scores)
    comparable = request.comparable or request.normalised  # the latency solver's only other choice: per group
    if request.target == "latency":
        if request.table is None or request.timer is None:
            raise ValueError("target='latency' needs a latency table and a timer in the PlanRequest")
        table = request.table
        if request.round_to != "auto":
            return _with_origin(plan_measured(groups, scores, table, request.ratio, request.max_layer_ratio,
                                              [request.alignment], request.timer, comparable), table)
        outcome = plan_measured(groups, scores, table, request.ratio, request.max_layer_ratio,
                                finer_multiples(table.resolution), request.timer, comparable)
        why = ("the latency table's finest measured step" if outcome.round_to == table.resolution else
               f"in steps of {table.resolution}, the latency table's finest measured step, the solver cannot reach "
               "the request")
        outcome.notes.insert(0, f"round_to='auto': steps of {outcome.round_to} were used; this device runs "
                                f"multiples of {table.alignment} channels fastest ({why})")
        return _with_origin(outcome, table)

    def plan_at(aim: float, cost: CostModel) -> Plan:
        if request.round_to != "auto":
            return Plan(plan_pruning(groups, scores, cost, aim, request.max_layer_ratio, request.alignment,
                                     per_group=not request.normalised), request.alignment)
        return _plan_auto(groups, scores, cost, aim, request.max_layer_ratio, request.alignment,
                          request.table, request.macs_table, per_group=not request.normalised)

    if request.target != "macs" or request.counter is None:
        return plan_at(request.ratio, copy.deepcopy(request.cost))
    return _plan_counted(plan_at, request.cost, request.ratio, request.counter)


def _with_origin(outcome: Plan, table: LatencyTable) -> Plan:
    """The report says where the latency table came from: measured now, or cached and spot-checked."""
    if table.origin:
        outcome.notes.append(table.origin)
    return outcome


def _from_rank_zero(outcome: Plan) -> Plan:
    import torch.distributed as dist

    if world()[1] == 1:
        return outcome
    box: list[Any] = [outcome]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _plan_counted(plan_at: Callable[[float, CostModel], Plan], cost: CostModel, ratio: float,
                  counter: Callable[[Removals], float]) -> Plan:
    """MACs: plan on the cost model, count the MACs of the pruned copy, and re-aim while the count misses by more
    than half a point. The cost model's MACs of parameter-free layers (activations, pooling, adds) are estimated
    from the layer that produced their input; after a concatenation or an add there is no such layer, and the
    estimate can miss by over a point (51.2% for 50% on a random graph with residual adds and pooled heads)."""
    aim = ratio
    passes: list[tuple[float, Plan, CostModel, float]] = []
    for _ in range(_MAX_MACS_PASSES):
        attempt = copy.deepcopy(cost)
        outcome = plan_at(aim, attempt)
        counted = counter(outcome.removals)
        passes.append((counted, outcome, attempt, aim))
        if abs(counted - ratio) <= _MACS_TOLERANCE:
            break
        aim = min(0.99, max(0.001, aim + ratio - counted))
    counted, outcome, attempt, aim = min(passes, key=lambda p: abs(p[0] - ratio))
    if aim != ratio:
        outcome.notes.append(f"MACs: the cost model's estimate missed, so the plan aimed at {aim:.1%} to count "
                             f"{counted:.1%}")
    return outcome


def finer_multiples(multiple: int) -> list[int]:
    """`multiple` and the finer multiples that divide it, down to 1: what round_to="auto" falls back to."""
    return list(dict.fromkeys(m for m in (multiple, 32, 16, 8, 4, 2, 1) if m <= multiple and multiple % m == 0))


def _plan_auto(groups: list[ChannelGroup], scores: list[torch.Tensor], cost: CostModel, ratio: float,
               max_layer_ratio: float, alignment: int, injected: LatencyTable | None,
               macs_table: LatencyTable | None, per_group: bool = True) -> Plan:
    """Plan in steps of the device's multiple, falling back to finer multiples (down to 1) while the budget cannot
    be met, and in steps of the next finer multiple that meets it; keep the finer plan only if it is predicted at
    least `_FINER_GAIN` faster: by the `injected` table if there is one, else by MACs. Steps of 16 can force a
    params budget off the narrow, high-resolution layers where the time is (DrivingNet-m at 40% fewer parameters:
    1.33x in steps of 16, 1.61x in steps of 8). The note says which multiple was used and why.

    Raises:
        UnreachableBudget: no multiple down to 1 meets the budget (the message gives the closest, in steps of 1).
        ValueError: every plan that meets it is predicted slower than the dense model.
    """
    multiples = finer_multiples(alignment)
    table = injected or macs_table
    misses: list[UnreachableBudget] = []
    slower: list[str] = []
    candidates: list[tuple[float, int, dict[int, list[int]], CostModel]] = []
    for multiple in multiples:
        attempt = copy.deepcopy(cost)
        try:
            plan = plan_pruning(groups, scores, attempt, ratio, max_layer_ratio, multiple, per_group)
        except UnreachableBudget as missed:
            misses.append(missed)
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
        tried = ", ".join(str(m) for m in multiples)
        raise UnreachableBudget(f"round_to='auto' tried steps of {tried} and none meets the budget. {misses[-1]}",
                                closest=misses[-1].closest, round_to=misses[-1].round_to)
    chosen = candidates[0]
    if len(candidates) == 2 and candidates[1][0] < candidates[0][0] * (1 - _FINER_GAIN):
        chosen = candidates[1]
    predicted, multiple, plan, attempt = chosen
    unit = "latency by the given table" if injected is not None else "MACs"
    why = []
    if misses:
        why.append(f"no plan in steps of {' or '.join(str(m.round_to) for m in misses)} removes {ratio:.1%} of "
                   f"{cost.target}: the closest, in steps of {misses[-1].round_to}, removes {misses[-1].closest:.1%}")
    if chosen is not candidates[0]:
        why.append(f"steps of {multiple} are predicted at {predicted:.1%} of the dense {unit}, against "
                   f"{candidates[0][0]:.1%} in steps of {candidates[0][1]}")
    elif len(candidates) == 2:
        why.append(f"steps of {candidates[1][1]} were predicted no faster ({candidates[1][0]:.1%} of the dense "
                   f"{unit}, against {predicted:.1%}; finer steps are taken only when {_FINER_GAIN:.0%} faster)")
    elif not misses:
        why.append("no finer multiple to compare with")
    return Plan(plan, multiple, notes=[f"round_to='auto': steps of {multiple} were used; this device runs "
                                              f"multiples of {alignment} channels fastest ({'; '.join(why)}); "
                                              "pass round_to=N to choose the multiple yourself"])


