"""Exact planning (params, MACs, channels): in steps of `round_to`'s multiple, or under round_to="auto" the
device's multiple first, finer multiples down to 1 when the budget needs them, and the finer plan when it is
predicted faster."""

from __future__ import annotations

import copy

from .cost import Cost
from .latency import LatencyModel
from .params import plan_pruning
from .plan import Plan, UnreachableBudget
from .request import PlanRequest

__all__ = ["finer_multiples", "plan_exact"]

_FINER_GAIN = 0.02  # round_to="auto" takes the finer multiple's plan only if it is predicted 2% faster


def plan_exact(request: PlanRequest, aim: float, cost: Cost) -> Plan:
    """The plan that removes `aim` of `cost` (changed: pass a copy), in the multiples `request.round_to` allows.

    Raises:
        UnreachableBudget: no multiple it may use meets the budget (the message gives the closest).
    """
    if request.round_to != "auto":
        return Plan(plan_pruning(list(request.groups), list(request.scores), cost, aim, request.max_layer_ratio,
                                 request.alignment, per_group=not request.normalised), request.alignment)
    return _plan_auto(request, aim, cost)


def finer_multiples(multiple: int) -> list[int]:
    """`multiple` and the finer multiples that divide it, down to 1: what round_to="auto" falls back to."""
    return list(dict.fromkeys(m for m in (multiple, 32, 16, 8, 4, 2, 1) if m <= multiple and multiple % m == 0))


def _plan_auto(request: PlanRequest, ratio: float, cost: Cost) -> Plan:
    """Plan in steps of the device's multiple, falling back to finer multiples (down to 1) while the budget cannot
    be met, and in steps of the next finer multiple that meets it; keep the finer plan only if it is predicted at
    least `_FINER_GAIN` faster: by the `injected` table if there is one, else by MACs. Steps of 16 can force a
    params budget off the narrow, high-resolution layers where the time is (DrivingNet-m at 40% fewer parameters:
    1.33x in steps of 16, 1.61x in steps of 8). The note says which multiple was used and why.

    Raises:
        UnreachableBudget: no multiple down to 1 meets the budget (the message gives the closest, in steps of 1).
        ValueError: every plan that meets it is predicted slower than the dense model.
    """
    groups, scores, max_layer_ratio = list(request.groups), list(request.scores), request.max_layer_ratio
    alignment, injected = request.alignment, request.table
    multiples = finer_multiples(alignment)
    table = injected or request.macs_table
    misses: list[UnreachableBudget] = []
    slower: list[str] = []
    candidates: list[tuple[float, int, dict[int, list[int]], Cost]] = []
    for multiple in multiples:
        attempt = copy.deepcopy(cost)
        try:
            plan = plan_pruning(groups, scores, attempt, ratio, max_layer_ratio, multiple, not request.normalised)
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


