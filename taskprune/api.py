"""`prune()`: validate -> analyse graph -> score -> plan budget -> apply -> verify -> report."""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from ._runtime import preserved_modes
from .budget import TARGETS, CostModel
from .counting import activation_macs, layer_macs
from .criteria import ScoringContext, get_criterion
from .gradients import collect_gradients
from .graph import PruningGraph, count_macs, count_params
from .planning import plan_for_target
from .probe import find_unsafe_groups
from .report import GroupChange, PruneReport
from .safety import output_shapes, run_model, transplant, verify_outputs
from .tasks import MultiTaskAdapter, Tasks

__all__ = ["PruneResult", "prune"]


@dataclass
class PruneResult:
    """What `prune` returns.

    Attributes:
        model: the pruned model (a new module unless `inplace=True`).
        report: params/MACs before and after, per-group channels and tasks, criterion, time per phase.
        history: what was removed, in torch-pruning's pruning-history form.
        channel_map: for every layer whose output channels changed, the original channel indices it keeps.
        example_inputs: the inputs it was pruned with (`taskprune.save` records their shapes to replay it).
    """

    model: nn.Module
    report: PruneReport
    history: list[list[Any]]
    channel_map: dict[str, list[int]]
    example_inputs: Any = None


def prune(model: nn.Module, example_inputs: Any, *, ratio: float, target: str = "params",
          importance: Any = "magnitude", tasks: MultiTaskAdapter | None = None, data: Iterable[Any] | None = None,
          num_batches: int = 16, protect: Sequence[str] = (), round_to: int | str | None = "auto",
          max_layer_ratio: float = 0.8, inplace: bool = False, progress: bool = True, seed: int = 0,
          strict: bool = False) -> PruneResult:
    """Remove whole channels from a (multi-task) model until `ratio` of `target` is gone.

    Args:
        model: any `nn.Module`; its output may be a tensor or a nested tuple/list/dict/namedtuple/dataclass.
        example_inputs: what the model is called with: a tensor, a tuple of positional args or a dict of kwargs.
        ratio: fraction of `target` to remove, 0 < ratio < 1; reached within 1 percentage point (latency: within
            5% of the requested remaining latency, measured end to end, or the report says why not).
        target: "params", "macs", "channels" or "latency" (measured on the model's device; see
            `taskprune.latency`).
        importance: a criterion name (see `taskprune.list_criteria()`), a criterion instance, or a
            `torch_pruning.importance.Importance`.
        tasks: the model's tasks (`taskprune.Tasks`); by default every output leaf is its own task.
        data: batches for gradient criteria (an iterable such as a DataLoader).
        num_batches: how many batches of `data` gradient criteria read.
        protect: fnmatch patterns of module names whose output channels are never pruned. Output layers are
            protected without being named.
        round_to: keep every pruned group's channel count a multiple of this; "auto" picks the multiple the
            device runs fastest (a cached probe), or the next finer one when the budget needs it or its plan
            leaves 2% fewer MACs (target="latency": half that multiple, with the measured table choosing); None
            does not round.
        max_layer_ratio: no group loses more than this fraction of its channels.
        inplace: prune `model` itself; otherwise it is left untouched and a pruned copy is returned.
        progress: show a progress bar while collecting gradients.
        seed: seed of randomised criteria.
        strict: raise instead of protecting what the graph cannot follow (groups whose one-channel removal breaks
            the forward, torch-pruning's unwrapped parameters and unknown operations).

    Returns:
        PruneResult with the pruned model, a report, the pruning history and the channel map.

    Raises:
        ValueError / TypeError: bad arguments, named with the valid choices. RuntimeError: the model's forward
        fails, a loss is not finite, or the pruned model would change an output; the model is then untouched.

    Example:
        >>> result = taskprune.prune(model, torch.randn(1, 3, 384, 640), ratio=0.3)
        >>> print(result.report)
    """
    _validate(model, ratio, target, num_batches, round_to, max_layer_ratio, protect)
    criterion = get_criterion(importance)
    if criterion.needs and (tasks is None or data is None):
        raise ValueError(f"criterion {criterion.name!r} needs gradients: pass tasks= (with losses) and data=")
    if isinstance(protect, str):
        protect = (protect,)
    timings: dict[str, float] = {}
    work = copy.deepcopy(model)
    with _timed(timings, "graph"):
        with preserved_modes(work, eval=True):
            reference = run_model(work, example_inputs, "model(example_inputs)")
        adapter = tasks if tasks is not None else Tasks.from_output(reference)
        macs_before, params_before = count_macs(work, example_inputs), count_params(work)
        graph = PruningGraph(work, example_inputs, adapter, protect=protect)
        _protect_unsafe_groups(graph, example_inputs, output_shapes(reference), strict)
    gradients = None
    if criterion.needs:
        with _timed(timings, "gradients"):
            gradients = collect_gradients(work, graph.groups, adapter, data or [], num_batches, criterion.needs,
                                          progress=progress)
    with _timed(timings, "scoring"):
        context = ScoringContext(model=work, groups=graph.groups, gradients=gradients, seed=seed, graph=graph)
        scores = criterion.score(context)
        _check_scores(scores, graph, criterion.name)
    with _timed(timings, "planning"):
        cost = _cost_model(work, example_inputs, graph, target, macs_before, params_before)
        planned = plan_for_target(graph.groups, scores, cost, target, ratio, max_layer_ratio, round_to, work,
                                  example_inputs, _pruned_copy(graph), progress,
                                  comparable=bool(criterion.needs))  # gradient criteria estimate loss change
        plan = planned.plan
    with _timed(timings, "applying"):
        channel_map = graph.apply(plan)
    with _timed(timings, "verifying"):
        verify_outputs(work, example_inputs, output_shapes(reference), graph.output_layers_by_key)
        macs_after, params_after = count_macs(work, example_inputs), count_params(work)
    reached = planned.reached if planned.reached is not None else \
        _reduction(target, macs_before, macs_after, params_before, params_after, graph, plan)
    notes = list(planned.notes)
    if target != "latency" and abs(reached - ratio) > 0.01:
        # exact for params; MACs of parameter-free ops fed by adds or concatenations are estimated: say so
        notes.append(f"measured {target} reduction {reached:.1%} misses the requested {ratio:.1%} by more than "
                     "a point; please report this model")
        warnings.warn(notes[-1], stacklevel=2)
    report = PruneReport(
        criterion=criterion.name, target=target, ratio=ratio, reached=reached,
        params_before=params_before, params_after=params_after, macs_before=macs_before, macs_after=macs_after,
        groups=[GroupChange(g.root, g.channels, g.channels - len(plan.get(g.index, [])), tuple(sorted(g.tasks)),
                            g.blocked) for g in graph.groups],
        protected_outputs=sorted(graph.output_layers), timings=timings,
        warnings=list(graph.warnings) + notes)
    history = graph.history()
    if inplace:
        transplant(work, model)
        work = model
    return PruneResult(model=work, report=report, history=history, channel_map=channel_map,
                       example_inputs=example_inputs)


def _protect_unsafe_groups(graph: PruningGraph, example_inputs: Any, expected: dict[str, tuple[int, ...]],
                           strict: bool) -> None:
    """Probe every group once; keep whole (or, with strict, refuse) the ones the graph gets wrong. A graph made
    only of convolutions, norms, linear layers and channel-wise operations needs no probe."""
    roots = [g.root for g in graph.groups if not g.blocked] if graph.unusual else []
    unsafe = find_unsafe_groups(graph, example_inputs, roots, expected)
    for group in graph.groups:
        if group.root in unsafe:
            group.blocked = f"kept whole: removing one channel fails ({unsafe[group.root]})"
            graph.warnings.append(f"{group.root}: {group.blocked}")
    if strict and graph.warnings:
        raise ValueError("strict=True and the graph has parts taskprune cannot prune safely:\n  "
                         + "\n  ".join(graph.warnings))


def _validate(model: Any, ratio: Any, target: Any, num_batches: Any, round_to: Any, max_layer_ratio: Any,
              protect: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio < 1:
        raise ValueError(f"ratio must be a number with 0 < ratio < 1, got {ratio!r}")
    if target not in TARGETS:
        raise ValueError(f"Unknown target {target!r}; available: {', '.join(TARGETS)}")
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


def _pruned_copy(graph: PruningGraph) -> Callable[[dict[int, list[int]]], nn.Module]:
    """A function plan -> a pruned copy of the graph's model, for measuring a plan (no second trace)."""
    def pruned(plan: dict[int, list[int]]) -> nn.Module:
        trial = graph.copy()
        trial.apply(plan)
        return trial.model
    return pruned


def _check_scores(scores: Any, graph: PruningGraph, name: str) -> None:
    if len(scores) != len(graph.groups):
        raise RuntimeError(f"criterion {name!r} returned {len(scores)} score vectors for {len(graph.groups)} groups")
    for group, score in zip(graph.groups, scores, strict=True):
        if score.shape != (group.channels,):
            raise RuntimeError(f"criterion {name!r} scored group {group.root!r} with shape {tuple(score.shape)}, "
                               f"expected ({group.channels},)")


def _cost_model(model: nn.Module, example_inputs: Any, graph: PruningGraph, target: str, macs: int,
                params: int) -> CostModel:
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    if target == "macs":
        per_layer = layer_macs(model, example_inputs)
        own = {name: sum(p.numel() for p in m.parameters(recurse=False)) for name, m in model.named_modules()}
        rates = {p: per_layer.get(p.rpartition(".")[0], 0.0) / max(own.get(p.rpartition(".")[0], 1), 1)
                 for p in shapes}
        for param, extra in activation_macs(model, example_inputs).items():
            rates[param] = rates.get(param, 0.0) + extra / max(math.prod(shapes[param]), 1)
        return CostModel(graph.groups, shapes, rates, macs, target)
    return CostModel(graph.groups, shapes, dict.fromkeys(shapes, 1.0), params, target)


def _reduction(target: str, macs_before: int, macs_after: int, params_before: int, params_after: int,
               graph: PruningGraph, plan: dict[int, list[int]]) -> float:
    if target == "macs":
        return 1 - macs_after / macs_before if macs_before else 0.0
    if target == "channels":
        total = sum(g.channels for g in graph.groups)
        return sum(len(v) for v in plan.values()) / total if total else 0.0
    return 1 - params_after / params_before if params_before else 0.0


@contextmanager
def _timed(timings: dict[str, float], phase: str):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    yield
    timings[phase] = time.perf_counter() - start
