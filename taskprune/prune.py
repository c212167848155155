"""`prune()`: validate -> analyse graph -> score -> plan budget -> apply -> verify -> report."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from . import latency
from ._runtime import ordinary_tensors, preserved_modes, restore_requires_grad, trainable_copy, with_autograd
from .budget import (
    Outcome,
    PlanRequest,
    Removals,
    Target,
    UnreachableBudget,
    get_target,
    plan,
    with_kept_whole,
)
from .criteria import Criterion, ScoringContext, get_criterion
from .criteria.gradients import collect_gradients
from .graph import ModelProfile, PruningGraph, count_macs, count_params, counting, protect_unsafe_groups
from .reporting import PruneReport
from .safety import first_call, output_shapes, transplant, verify_outputs
from .tasks import MultiTaskAdapter, Tasks

__all__ = ["PruneResult", "prune"]

_TIMING_REPEATS = 15  # end-to-end rounds per measured latency pass


@dataclass
class PruneResult:
    """What `prune` returns.

    Attributes:
        model: the pruned model (a new module unless `inplace=True`).
        report: params/MACs before and after, per-group channels and tasks, criterion, time per phase.
        history: what was removed, in torch-pruning's pruning-history form.
        channel_map: for every layer whose output channels changed, the original channel indices it keeps.
        example_inputs: the inputs it was pruned with, as the model was called (a list that the model takes as one
            argument is wrapped in a tuple); `taskprune.save` records their shapes to replay it.
    """

    model: nn.Module
    report: PruneReport
    history: list[list[Any]]
    channel_map: dict[str, list[int]]
    example_inputs: Any = None


@with_autograd
def prune(model: nn.Module, example_inputs: Any, *, ratio: float, target: str = "params",
          importance: Any = "magnitude", tasks: MultiTaskAdapter | None = None, data: Iterable[Any] | None = None,
          num_batches: int = 16, protect: Sequence[str] = (), round_to: int | str | None = "auto",
          max_layer_ratio: float = 0.8, inplace: bool = False, progress: bool = True, seed: int = 0,
          strict: bool = False, latency_table: latency.LatencyTable | None = None) -> PruneResult:
    """Remove whole channels from a (multi-task) model until `ratio` of `target` is gone.

    Args:
        model: any `nn.Module`; its output may be a tensor or a nested tuple/list/dict/namedtuple/dataclass.
        example_inputs: what the model is called with: a tensor, a tuple of positional args or a dict of kwargs;
            a list is tried as positional args first and, when that call fails, as one argument
            (torch-pruning's convention, which torchvision detectors need). `report.call` says which was used.
        ratio: fraction of `target` to remove, 0 < ratio < 1. The result is within 1 percentage point of it
            (latency: within 5% of the requested remaining latency, measured end to end), whatever `round_to`;
            when no plan gets there, `prune` raises `taskprune.budget.UnreachableBudget` (a ValueError) instead
            of returning a model that misses, and the message gives the closest value found and what to change.
        target: "params", "macs", "channels" or "latency" (measured on the model's device; see
            `taskprune.latency`), or a target registered with `taskprune.budget.register_target`.
        importance: a criterion name (see `taskprune.list_criteria()`), a criterion instance, or a
            `torch_pruning.importance.Importance`.
        tasks: the model's tasks (`taskprune.Tasks`); by default every output leaf is its own task.
        data: batches for gradient criteria (an iterable such as a DataLoader).
        num_batches: how many batches of `data` gradient criteria read.
        protect: fnmatch patterns of module names whose output channels are never pruned. Output layers are
            protected without being named.
        round_to: keep every pruned group's channel count a multiple of this; "auto" picks the multiple the
            device runs fastest (a cached probe, or `latency.override(alignment=...)`), falls back to finer
            multiples down to 1 while that one cannot meet the budget, and takes the next finer one when its plan
            leaves 2% fewer MACs (target="latency": half the multiple its table is measured at, which is the
            device's but at most 8); None does not round. `report.round_to` is the multiple used, and for
            "auto" the report says why.
        max_layer_ratio: no group loses more than this fraction of its channels.
        inplace: prune `model` itself; otherwise it is left untouched and a pruned copy is returned.
        progress: show a progress bar while collecting gradients.
        seed: seed of randomised criteria.
        strict: raise instead of protecting what the graph cannot follow (groups whose one-channel removal breaks
            the forward, torch-pruning's unwrapped parameters and unknown operations).
        latency_table: a `taskprune.latency.LatencyTable` to plan with instead of measuring this device (one
            measured on the target device); its alignment is the multiple round_to="auto" starts from. Default:
            the table set by `taskprune.latency.override`, else measured here when target="latency".

    Returns:
        PruneResult with the pruned model, a report, the pruning history and the channel map.

    Raises:
        ValueError / TypeError: bad arguments, named with the valid choices. UnreachableBudget (a ValueError): no
        plan meets `ratio` within its tolerance under `round_to`, `max_layer_ratio` and the protected layers.
        RuntimeError: the model's forward fails, a loss is not finite, or the pruned model would change an
        output. In every case the caller's model is untouched.

    A frozen model (`requires_grad_(False)`, whole or in part) and a call inside `torch.no_grad()` or
    `torch.inference_mode()` prune exactly as a plain one: the copy is traced and scored with gradients on, and the
    result's parameters require grad as the caller's did.

    Example:
        >>> result = taskprune.prune(model, torch.randn(1, 3, 384, 640), ratio=0.3)
        >>> print(result.report)
    """
    budget = _Budget(_validate(model, ratio, target, num_batches, round_to, max_layer_ratio, protect), ratio,
                     max_layer_ratio, round_to, latency_table)
    criterion = get_criterion(importance)
    if criterion.needs and (tasks is None or data is None):
        raise ValueError(f"criterion {criterion.name!r} needs gradients: pass tasks= (with losses) and data=")
    if isinstance(protect, str):
        protect = (protect,)
    timings: dict[str, float] = {}
    work = trainable_copy(model)  # the trace and the gradient criteria follow autograd, even through frozen layers
    example_inputs = ordinary_tensors(example_inputs)
    with _timed(timings, "graph"):
        with preserved_modes(work, eval=True), counting(work, example_inputs) as count:
            example_inputs, reference, call = first_call(work, example_inputs)
        adapter = tasks if tasks is not None else Tasks.from_output(reference)
        profile = count.profile()  # counted on the first call, handed to every stage that needs it
        macs_before, params_before = profile.macs, profile.params
        graph = PruningGraph(work, example_inputs, adapter, protect=protect)
        protect_unsafe_groups(graph, example_inputs, output_shapes(reference), strict)
        graph.warnings += [f"{layer}: its MACs are not counted (torch-pruning's formula cannot read its call: "
                           f"{why})" for layer, why in count.uncounted.items()]
    gradients = None
    if criterion.needs:
        with _timed(timings, "gradients"):
            gradients = collect_gradients(work, graph.groups, adapter, data or [], num_batches, criterion.needs,
                                          progress=progress, example_inputs=example_inputs)
    with _timed(timings, "scoring"):
        context = ScoringContext(model=work, groups=graph.groups, gradients=gradients, seed=seed, graph=graph)
        scores = criterion.score(context)
        _check_scores(scores, graph, criterion.name)
    with _timed(timings, "planning"):
        request = _plan_request(budget, criterion, graph, profile, scores, example_inputs, progress)
        try:
            planned = plan(request)
        except UnreachableBudget as refusal:  # say which groups block the budget, whatever the target
            raise with_kept_whole(refusal, graph.kept_whole()) from refusal
        removals = planned.removals
    with _timed(timings, "applying"):
        channel_map = graph.apply(removals)
    with _timed(timings, "verifying"):
        with counting(work, example_inputs) as count:
            verify_outputs(work, example_inputs, output_shapes(reference), graph.output_layers_by_key)
        macs_after, params_after = count.macs, count_params(work)
    reached = planned.reached if planned.reached is not None else budget.target.reduction(
        Outcome(params_before, params_after, macs_before, macs_after, graph.groups, removals))
    _check_reached(budget.target, ratio, reached, planned.round_to)
    report = PruneReport(
        criterion=criterion.name, target=target, ratio=ratio, reached=reached, call=call, round_to=planned.round_to,
        params_before=params_before, params_after=params_after, macs_before=macs_before, macs_after=macs_after,
        groups=[g.as_change(after=g.channels - len(removals.get(g.index, []))) for g in graph.groups],
        protected_outputs=sorted(graph.output_layers), timings=timings,
        warnings=list(graph.warnings), notes=list(planned.notes))
    history = graph.history()
    restore_requires_grad(work, model)
    if inplace:
        transplant(work, model)
        work = model
    return PruneResult(model=work, report=report, history=history, channel_map=channel_map,
                       example_inputs=example_inputs)


@dataclass(frozen=True)
class _Budget:
    """The budget as `prune` was asked for it."""

    target: Target
    ratio: float
    max_layer_ratio: float
    round_to: int | str | None
    latency_table: latency.LatencyTable | None


def _validate(model: Any, ratio: Any, target: Any, num_batches: Any, round_to: Any, max_layer_ratio: Any,
              protect: Any) -> Target:
    """The target, once every argument is checked (in the order of the signature)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(f"ratio must be a number with 0 < ratio < 1, got {ratio!r}")
    kind = get_target(target)
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ValueError(f"num_batches must be a positive int, got {num_batches!r}")
    if round_to not in (None, "auto") and (isinstance(round_to, bool) or not isinstance(round_to, int)
                                           or round_to < 1):
        raise ValueError(f"round_to must be 'auto', None or a positive int, got {round_to!r}")
    if isinstance(max_layer_ratio, bool) or not isinstance(max_layer_ratio, (int, float)) \
            or not 0 < max_layer_ratio <= 1:
        raise ValueError(f"max_layer_ratio must be in (0, 1], got {max_layer_ratio!r}")
    patterns = (protect,) if isinstance(protect, str) else protect
    if not all(isinstance(p, str) for p in patterns):
        raise TypeError("protect must be a sequence of module-name patterns (str), e.g. ('head.*',)")
    return kind


def _check_scores(scores: Any, graph: PruningGraph, name: str) -> None:
    if len(scores) != len(graph.groups):
        raise RuntimeError(f"criterion {name!r} returned {len(scores)} score vectors for {len(graph.groups)} groups")
    for group, score in zip(graph.groups, scores, strict=True):
        if score.shape != (group.channels,):
            raise RuntimeError(f"criterion {name!r} scored group {group.root!r} with shape {tuple(score.shape)}, "
                               f"expected ({group.channels},)")


def _check_reached(target: Target, ratio: float, reached: float, round_to: int) -> None:
    """One rule for every target and round_to: a result that misses the budget is not returned. The planners
    refuse what they cannot reach; this catches what the cost model mispredicted (latency checks its measured
    band while planning)."""
    if not target.misses(ratio, reached):
        return
    nearer = min(max(2 * ratio - reached, 0.001), 0.999)
    raise UnreachableBudget(f"measured {target.name} reduction {reached:.1%} misses the requested {ratio:.1%} by "
                            f"more than a point ({target.miss}); ask for ratio={nearer:.3f} to land nearer",
                            closest=reached, round_to=round_to)


# The coarsest multiple a latency table is measured at under round_to="auto". The probe times one convolution; at
# two threads on this project's CPU it says 32, and a table measured in multiples of 32 (widths rounded up to 16)
# misprices the layers that do not follow it: DrivingNet-s matched at 1.5x at two threads lost 10.87 Delta_m
# (test A, three seeds) planned on it, 6.97 on one in multiples of 8 (docs/evidence.md, "Two threads").
_TABLE_MULTIPLE = 8


def _plan_request(budget: _Budget, criterion: Criterion, graph: PruningGraph, profile: ModelProfile,
                  scores: list[Any], example_inputs: Any, progress: bool) -> PlanRequest:
    """Everything the planner needs: the one place that reads the device (the probe, or the table given as an
    argument or through `latency.override`) and measures for it."""
    model, target, round_to, latency_table = graph.model, budget.target, budget.round_to, budget.latency_table
    table = latency_table if latency_table is not None else latency.injected_table()
    device = next((p.device for p in model.parameters()), None)
    if round_to != "auto":
        alignment = int(round_to or 1)
    elif latency_table is not None:
        alignment = latency_table.alignment
    else:  # what latency.override says (an alignment, or its table's), else the device's probe
        alignment = latency.device_alignment(device or "cpu")
    if target.timed and table is None:
        table = latency.measure_table(model, example_inputs, progress=progress, alignment=min(
            alignment, _TABLE_MULTIPLE) if round_to == "auto" else alignment)
    macs_table = latency.macs_table(model, example_inputs, profile.layer_macs) if round_to == "auto" and \
        alignment > 1 and table is None else None

    def pruned_copy(removals: Removals) -> nn.Module:
        trial = graph.copy()  # the model with its traced graph: no second trace
        trial.apply(removals)
        return trial.model

    def timer(removals: Removals) -> Callable[[], float]:
        pruned = pruned_copy(removals)  # built once, timed as often as the planner asks
        return lambda: latency.latency_ratios([model, pruned], example_inputs, repeats=_TIMING_REPEATS)[1]

    def counter(removals: Removals) -> float:
        return 1 - count_macs(pruned_copy(removals), example_inputs) / profile.macs if profile.macs else 0.0

    return PlanRequest(groups=graph.groups, scores=scores, cost=target.cost_model(graph.groups, profile),
                       target=target.name, ratio=budget.ratio, max_layer_ratio=budget.max_layer_ratio,
                       round_to=round_to, alignment=alignment, comparable=criterion.comparable,
                       normalised=criterion.normalised, table=table, macs_table=macs_table,
                       timer=timer if target.timed else None, counter=counter if target.counted else None)


@contextmanager
def _timed(timings: dict[str, float], phase: str):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start
