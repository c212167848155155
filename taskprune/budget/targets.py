"""Budget targets: one `Target` per kind of budget `prune(target=...)` accepts, in a registry by name.

A target knows its cost model (what a channel costs), how a plan meets it (exactly on the cost model, or corrected
by counting or timing the pruned copy), its tolerance, and what it measures on the pruned model. Adding a target is
one class and one registration:

    >>> @register_target
    ... class Weights(ParamsTarget):
    ...     name = "weights"   # params, under another name
"""

from __future__ import annotations

import abc
import copy
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from ..groups import ChannelGroup
from ..latency import LatencyTable
from .cost import ChannelCount, Cost, CostModel
from .exact import finer_multiples, plan_exact
from .latency import RELATIVE_TOLERANCE
from .params import BUDGET_TOLERANCE
from .passes import plan_measured
from .plan import Plan, Removals
from .request import PlanRequest

__all__ = ["ChannelsTarget", "LatencyTarget", "MacsTarget", "Outcome", "ParamsTarget", "Profile", "Target",
           "get_target", "list_targets", "register_target", "unregister_target"]

_MAX_MACS_PASSES = 4
_MACS_TOLERANCE = 0.005


class Profile(Protocol):
    """What a target reads of the dense model (`taskprune.graph.ModelProfile` is one)."""

    @property
    def params(self) -> int: ...

    @property
    def macs(self) -> int: ...

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]: ...

    def macs_rates(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class Outcome:
    """What `prune` counted on the dense and the pruned model, and what it removed."""

    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    groups: Sequence[ChannelGroup]
    removals: Removals


class Target(abc.ABC):
    """One kind of budget. Subclass it, set `name`, and decorate the class with `register_target`.

    Attributes:
        name: what `prune(target=...)` takes.
        tolerance: how far the reduction reached may be from the request (absolute, as a fraction).
        timed: the plan is corrected by timing pruned copies: `prune` hands the planner a latency table and a timer.
        counted: the plan is corrected by counting the pruned copy's MACs: `prune` hands the planner a counter.
        miss: why a result can land outside the tolerance, for the message that refuses it.
    """

    name: ClassVar[str] = ""
    tolerance: ClassVar[float] = BUDGET_TOLERANCE
    timed: ClassVar[bool] = False
    counted: ClassVar[bool] = False
    miss: ClassVar[str] = "the exact cost model missed part of this model, a bug: please report it"

    @abc.abstractmethod
    def cost_model(self, groups: list[ChannelGroup], profile: Profile) -> Cost:
        """The exact cost model of the dense model, which the planner takes channels away on."""

    @abc.abstractmethod
    def reduction(self, outcome: Outcome) -> float:
        """The reduction the pruned model reached, measured as this target counts it."""

    def plan(self, request: PlanRequest) -> Plan:
        """The plan for `request`: exactly on a copy of its cost model."""
        return plan_exact(request, request.ratio, copy.deepcopy(request.cost))

    def misses(self, ratio: float, reached: float) -> bool:
        """The reduction reached breaks the promise for `ratio`: `prune` refuses the result."""
        return abs(reached - ratio) > self.tolerance


def _priced(groups: list[ChannelGroup], profile: Profile, name: str) -> CostModel:
    """The cost model that counts parameter elements."""
    return CostModel(groups, profile.shapes, dict.fromkeys(profile.shapes, 1.0), profile.params, name)


class ParamsTarget(Target):
    """Parameters, counted exactly: every parameter's size is the product of its channel counts."""

    name = "params"

    def cost_model(self, groups: list[ChannelGroup], profile: Profile) -> Cost:
        return _priced(groups, profile, self.name)

    def reduction(self, outcome: Outcome) -> float:
        before = outcome.params_before
        return 1 - outcome.params_after / before if before else 0.0


class MacsTarget(Target):
    """MACs of one forward: planned on the cost model, then the pruned copy's MACs are counted and the aim
    corrected while the count misses by more than half a point."""

    name = "macs"
    counted = True
    miss = "the MACs of parameter-free operations after additions and concatenations are estimated"

    def cost_model(self, groups: list[ChannelGroup], profile: Profile) -> Cost:
        return CostModel(groups, profile.shapes, profile.macs_rates(), profile.macs, self.name)

    def reduction(self, outcome: Outcome) -> float:
        before = outcome.macs_before
        return 1 - outcome.macs_after / before if before else 0.0

    def plan(self, request: PlanRequest) -> Plan:
        if request.counter is None:
            return super().plan(request)
        return _plan_counted(request, request.counter)


def _plan_counted(request: PlanRequest, counter: Callable[[Removals], float]) -> Plan:
    """Plan on the cost model, count the MACs of the pruned copy, and re-aim while the count misses by more than
    half a point. The cost model's MACs of parameter-free layers (activations, pooling, adds) are estimated from the
    layer that produced their input; after a concatenation or an add there is no such layer, and the estimate can
    miss by over a point (51.2% for 50% on a random graph with residual adds and pooled heads)."""
    ratio = aim = request.ratio
    passes: list[tuple[float, Plan, float]] = []
    for _ in range(_MAX_MACS_PASSES):
        outcome = plan_exact(request, aim, copy.deepcopy(request.cost))
        counted = counter(outcome.removals)
        passes.append((counted, outcome, aim))
        if abs(counted - ratio) <= _MACS_TOLERANCE:
            break
        aim = min(0.99, max(0.001, aim + ratio - counted))
    counted, outcome, aim = min(passes, key=lambda p: abs(p[0] - ratio))
    if aim != ratio:
        outcome.notes.append(f"MACs: the cost model's estimate missed, so the plan aimed at {aim:.1%} to count "
                             f"{counted:.1%}")
    return outcome


class ChannelsTarget(Target):
    """Channels, torch-pruning's meaning of a ratio: the fraction of all the groups' channels removed."""

    name = "channels"

    def cost_model(self, groups: list[ChannelGroup], profile: Profile) -> Cost:
        return ChannelCount(groups, self.name)

    def reduction(self, outcome: Outcome) -> float:
        total = sum(g.channels for g in outcome.groups)
        return sum(len(v) for v in outcome.removals.values()) / total if total else 0.0


class LatencyTarget(Target):
    """Latency measured on the device: solved on a latency table, then the pruned copy is timed end to end and
    the aim corrected while it misses. Within 5% of the requested remaining latency, checked on the measurements
    while planning; the plan carries the reduction measured."""

    name = "latency"
    tolerance = RELATIVE_TOLERANCE
    timed = True

    def cost_model(self, groups: list[ChannelGroup], profile: Profile) -> Cost:
        return _priced(groups, profile, self.name)  # the latency table prices the plan; this is its size

    def reduction(self, outcome: Outcome) -> float:
        raise ValueError("the latency reduction is measured while planning (Plan.reached), not after")

    def misses(self, ratio: float, reached: float) -> bool:
        return False  # the planner refuses a plan whose measured latency misses the band

    def plan(self, request: PlanRequest) -> Plan:
        table = request.table
        if table is None or request.timer is None:
            raise ValueError(f"target={self.name!r} needs a latency table and a timer in the PlanRequest")
        if request.round_to != "auto":
            return _with_origin(plan_measured(request, [request.alignment]), table)
        outcome = plan_measured(request, finer_multiples(table.resolution))
        why = ("the latency table's finest measured step" if outcome.round_to == table.resolution else
               f"in steps of {table.resolution}, the latency table's finest measured step, the solver cannot reach "
               "the request")
        if table.alignment != request.alignment:
            why += f"; the latency table is measured in multiples of {table.alignment}"
        outcome.notes.insert(0, f"round_to='auto': steps of {outcome.round_to} were used; this device runs "
                                f"multiples of {request.alignment} channels fastest ({why})")
        return _with_origin(outcome, table)


def _with_origin(outcome: Plan, table: LatencyTable) -> Plan:
    """The report says where the latency table came from: measured now, or cached and spot-checked."""
    if table.origin:
        outcome.notes.append(table.origin)
    return outcome


_REGISTRY: dict[str, Target] = {}
T = TypeVar("T", bound=type[Target])


def register_target(cls: T) -> T:
    """Class decorator registering a budget target under its `name`: `prune(target=name)` then plans with it.

    Raises:
        ValueError: the class has no name, or another target has it.
    """
    if not cls.name:
        raise ValueError(f"target class {cls.__name__} needs a name (name = '...')")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"a target named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister_target(name: str) -> None:
    """Remove a registered target (a plug-in's tests clean up after themselves with it).

    Raises:
        ValueError: `name` is not registered (the message lists what is).
    """
    get_target(name)
    del _REGISTRY[name]


def list_targets(pattern: str = "*") -> list[str]:
    """Registered target names matching an fnmatch pattern, in the order they were registered."""
    return [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]


def get_target(name: str) -> Target:
    """The registered target called `name`.

    Raises:
        ValueError: no target has that name (the message lists the registered ones).
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"Unknown target {name!r}; available: {', '.join(list_targets())}")
    return _REGISTRY[name]


for _builtin in (ParamsTarget, MacsTarget, ChannelsTarget, LatencyTarget):
    register_target(_builtin)
