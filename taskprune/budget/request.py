"""`PlanRequest`: everything the planner needs, computed by the caller and handed down as one frozen object."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..groups import ChannelGroup
from ..latency import LatencyTable
from .cost import Cost
from .plan import Removals

__all__ = ["PlanRequest"]


@dataclass(frozen=True)
class PlanRequest:
    """Everything the planner needs, computed by the caller.

    Attributes:
        groups, scores: the channel groups and one score per channel (higher: keep).
        cost: the exact cost model of the dense model for the target (copied, never changed).
        target: the registered name of the budget target (`taskprune.budget.list_targets()`).
        ratio, max_layer_ratio, round_to: as given to `prune`.
        alignment: the device's channel multiple (what round_to="auto" starts from), or round_to's multiple.
        comparable: the scores are in one unit across groups (see `Criterion`).
        normalised: the criterion normalised each group's scores itself: the planner uses them as they are.
        table: target="latency": the latency table; otherwise a table given by the user that round_to="auto"
            compares plans by.
        macs_table: a table that costs layers by MACs: what round_to="auto" compares plans by without `table`.
        timer: a timed target (latency): `timer(removals)` builds the pruned copy once and returns a function that
            times it against the dense model (fraction of the dense latency) each time it is called.
        counter: a counted target (macs): `counter(removals)`, the MACs reduction of the pruned copy, counted.
    """

    groups: Sequence[ChannelGroup]
    scores: Sequence[torch.Tensor]
    cost: Cost
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

    @property
    def one_scale(self) -> bool:
        """The scores may be compared across groups as they are: they are in one unit, or the criterion normalised
        each group itself (the latency solver's only other choice is to divide each group by its own mean)."""
        return self.comparable or self.normalised
