"""`Plan`: what the planner decided, and `UnreachableBudget`: why it could not."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["Plan", "Removals", "UnreachableBudget", "budget_fix", "kept_whole_summary", "with_kept_whole"]

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


def budget_fix(ratio: float, closest: float, max_layer_ratio: float, finer: bool, capped: bool = True) -> str:
    """What to change when a budget of `ratio` cannot be met and `closest` is the nearest plan: only changes that
    can help. Lowering the ratio is advised only to a ratio above 0, raising `max_layer_ratio` only when some group
    stopped at it (`capped`) and it is below 1, a finer multiple only when one is left (`finer`)."""
    fixes = []
    if closest > ratio:  # even the smallest steps overshoot
        fixes.append(f"raise ratio to {math.ceil(closest * 1000) / 1000:g} or more")
    else:
        lower = math.floor(closest * 1000) / 1000
        if lower > 0:
            fixes.append(f"lower ratio to {lower:g} or less")
        if capped and max_layer_ratio < 1:
            fixes.append(f"raise max_layer_ratio (now {max_layer_ratio:g})")
    if finer:
        fixes.append("pass a finer round_to (round_to=None does not round)")
    if not fixes:
        return "no ratio, max_layer_ratio or round_to gets closer: what is left to prune is kept whole or protected"
    return ", ".join(fixes[:-1]) + (" or " if len(fixes) > 1 else "") + fixes[-1]


# Why a group is kept whole, by the start of its reason; anything else is shown as it is, up to a colon or bracket.
_FOLLOW = "torch-pruning cannot follow their channels (through a reshape, split or attention over positions)"
_KINDS = (("kept whole: removing one channel fails", "removing one channel breaks the forward"),
          ("grouped convolution", "they run through a grouped convolution"),
          ("GroupNorm", "a GroupNorm splits their channels into groups"),
          ("kept whole: torch-pruning", _FOLLOW),
          ("kept whole: the dependency search", _FOLLOW))


def kept_whole_summary(reasons: Mapping[str, str], shown: int = 3) -> str:
    """One short sentence for the groups kept whole (root layer -> reason, the largest first): how many, why,
    the first few layers of each reason.

    Example:
        >>> kept_whole_summary({"a": "grouped convolution a (groups=4) is kept whole", "b": "grouped ..."})
        '2 groups are kept whole: 2 because they run through a grouped convolution: a, b'
    """
    if not reasons:
        return ""
    by_kind: dict[str, list[str]] = {}
    example: dict[str, str] = {}
    for layer, reason in reasons.items():
        kind = next((name for start, name in _KINDS if reason.startswith(start)), None)
        if kind is None:
            kind = reason.removeprefix("kept whole: ").split("(")[0].split(":")[0].strip()
        by_kind.setdefault(kind, []).append(layer)
        if kind.startswith("removing one channel") and "(" in reason:
            example.setdefault(kind, reason.split("(", 1)[1].rstrip(")")[:120])
    parts = []
    for kind, layers in sorted(by_kind.items(), key=lambda item: -len(item[1])):
        names = ", ".join(layers[:shown]) + (f" and {len(layers) - shown} more" if len(layers) > shown else "")
        detail = f" (the first: {example[kind]})" if kind in example else ""
        parts.append(f"{len(layers)} because {kind}: {names}{detail}")
    count = len(reasons)
    return f"{count} group{'s are' if count > 1 else ' is'} kept whole: " + "; ".join(parts)


def with_kept_whole(refusal: UnreachableBudget, reasons: Mapping[str, str]) -> UnreachableBudget:
    """`refusal` with the groups kept whole summarised after its message: which groups block the budget."""
    summary = kept_whole_summary(reasons)
    if not summary:
        return refusal
    return UnreachableBudget(f"{refusal}. {summary}", closest=refusal.closest, round_to=refusal.round_to)
