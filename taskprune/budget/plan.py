"""`Plan`: what the planner decided, and `UnreachableBudget`: why it could not."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Plan", "Removals", "UnreachableBudget", "budget_fix"]

Removals = dict[int, list[int]]
"""Per group index, the root channel indices to remove."""


@dataclass
class Plan:
    """What planning decided: the removals, the channel multiple used, the measured reduction (latency target),
    and notes for the report."""

    removals: Removals
    round_to: int
    reached: float | None = None
    notes: list[str] = field(default_factory=list)


class UnreachableBudget(ValueError):
    """No plan meets the budget within its tolerance under the caps (max_layer_ratio, protected outputs, the
    channel multiple). `closest` is the reduction of the closest plan found, `round_to` the multiple it was made in.
    """

    def __init__(self, message: str, closest: float = 0.0, round_to: int = 1):
        super().__init__(message)
        self.closest = closest
        self.round_to = round_to


def budget_fix(ratio: float, closest: float, max_layer_ratio: float, finer: bool) -> str:
    """What to change when a budget of `ratio` cannot be met and `closest` is the nearest plan."""
    if closest > ratio:  # even the smallest steps overshoot
        fixes = [f"raise ratio to {math.ceil(closest * 1000) / 1000:g} or more"]
    else:
        fixes = [f"lower ratio to {math.floor(closest * 1000) / 1000:g} or less",
                 f"raise max_layer_ratio (now {max_layer_ratio:g})"]
    if finer:
        fixes.append("pass a finer round_to (round_to=None does not round)")
    return ", ".join(fixes[:-1]) + (" or " if len(fixes) > 1 else "") + fixes[-1]
