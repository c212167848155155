"""`Plan`: what the planner decided."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Plan", "Removals"]

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
