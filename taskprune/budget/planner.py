"""The planning step of `prune`: from a `PlanRequest` (groups, scores, the budget, what the device runs fastest) to
a `Plan` (the channels to remove per group), through the request's `Target` (`targets.py`):

- params / channels: the exact cost model (`params.plan_pruning`).
- MACs: the same, then the pruned copy's MACs are counted and the aim corrected while the estimate misses.
- latency: the latency table (`latency.plan_latency`), then the pruned copy is timed end to end and the aim
  corrected while it misses (`passes.py`).
- round_to="auto": the device's multiple first, finer multiples down to 1 when the budget needs them, and the
  finer plan when it is predicted faster (`exact.py`).

Nothing here measures the device or builds a model: what must be measured comes in the request as functions.
"""

from __future__ import annotations

from typing import Any

from .._runtime import world
from .exact import finer_multiples as finer_multiples
from .plan import Plan, Removals
from .request import PlanRequest
from .targets import get_target

__all__ = ["Plan", "PlanRequest", "Removals", "finer_multiples", "plan"]


def plan(request: PlanRequest) -> Plan:
    """The plan for `request`. Under torch.distributed every rank takes rank 0's plan: a device probe or a latency
    measurement can come out differently on each rank, and replicas must not.

    Raises:
        UnreachableBudget: no plan meets the budget within its tolerance (the message names the fix).
    """
    return _from_rank_zero(get_target(request.target).plan(request))


def _from_rank_zero(outcome: Plan) -> Plan:
    import torch.distributed as dist

    if world()[1] == 1:
        return outcome
    box: list[Any] = [outcome]
    dist.broadcast_object_list(box, src=0)
    return box[0]
