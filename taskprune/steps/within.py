"""`prune_within()`: prune as far as the tasks allow, instead of guessing a ratio.

Pruning goes in steps; after every step the model recovers with a short fine-tune (distilled from the unpruned
model) and is evaluated. A reduction that breaks a limit gets remedies for the task that broke it, then the search
bisects down to the largest reduction that holds (search.py). The most-pruned model whose every metric
stayed within its limit is returned, with the frontier: what every evaluated model reached and cost.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .._runtime import copy_model, ordinary_tensors, restore_requires_grad, trainable_copy, with_autograd
from ..criteria import TaskWeighted, get_criterion
from ..distill import Distill
from ..prune import PruneResult
from ..tasks import MultiTaskAdapter
from ..train import FinetuneConfig
from .checkpoint import Checkpoint, criterion_options, plain_option
from .search import (
    REMEDIES,
    Search,
    SearchSetup,
    metric_tasks_of,
    next_ratio,
    pending_remedies,
    record,
)

__all__ = ["WithinResult", "prune_within"]

Evaluate = Callable[[nn.Module], Mapping[str, float]]


@dataclass
class WithinResult:
    """What `prune_within` returns.

    Attributes:
        result: the most-pruned model that stayed within every limit, as a `PruneResult` spanning all its steps
            (the unpruned model, with nothing removed, when already the first step broke a limit).
        frontier: one record per evaluated model, the unpruned one first: "step", "reduction" (of `target`,
            against the unpruned model), "params", "macs", "latency" (fraction of the unpruned model's, measured
            here: the median of "latency_repeats" interleaved rounds, "latency_spread" its quartiles), every
            metric, "drop" per limited metric, "within" and "recovery_rounds"; "ratio" (the reduction
            asked), "remedy" (None, or the remedy tried, e.g. "task_groups:lane"), "protected" (the layers that
            remedy kept whole), "verdict" (see `prune_within`) and "report" (the `report=` metrics, or None). An
            entry whose reduction no plan reaches (too fine a step for the channels left) has "refused" (why),
            "reduction" None and no metrics; it counts as broken.
        limits: the limits it was given.
    """

    result: PruneResult
    frontier: list[dict[str, Any]] = field(default_factory=list)
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def reduction(self) -> float:
        """The reduction of the returned model."""
        return max((f["reduction"] for f in self.frontier if f["within"]), default=0.0)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps({"limits": self.limits, "reduction": self.reduction, "frontier": self.frontier},
                          indent=indent)

    def plot(self, path: Any) -> Any:
        """Metric drop against reduction, one line per limited metric, each limit drawn (needs taskprune[plot])."""
        from ..reporting.plots import plot_frontier

        return plot_frontier(self.frontier, self.limits, path)


@with_autograd
def prune_within(model: nn.Module, example_inputs: Any, *, tasks: MultiTaskAdapter, data: Any, evaluate: Evaluate,
                 limits: Mapping[str, float], target: str = "params", step: float = 0.1, max_ratio: float = 0.9,
                 importance: Any = "task_taylor", recovery: FinetuneConfig | None = None,
                 distill: Distill | None = None, collate_fn: Callable[[list[Any]], Any] | None = None,
                 measure_latency: bool = True, progress: bool = True, validate: Evaluate | None = None,
                 report: Evaluate | None = None, resolution: float = 0.02, remedies: Sequence[str] = REMEDIES,
                 metric_tasks: Mapping[str, str] | None = None, checkpoint: str | os.PathLike[str] | None = None,
                 **prune_options: Any) -> WithinResult:
    """Prune `model` as far as every metric stays within its limit: steps of `step` (cumulative, of `target`), each
    followed by a recovery; when a reduction breaks a limit, remedies for the task that broke it, then a bisection
    between the last reduction that held and the first that broke.

    Args:
        model: the unpruned model (left untouched); also the teacher every recovery distils from.
        example_inputs: as for `prune`.
        tasks, data: the tasks with their losses, and the training data (batches for the gradient criteria and
            for the recovery fine-tunes: a Dataset with `collate_fn`, or a re-iterable of batches).
        evaluate: `evaluate(model) -> {metric: value}`, higher is better; called in eval mode. Every decision
            (a step held, a second recovery round, a remedy, the bisection) is taken on what it returns, so give it
            validation data, not the data you report.
        limits: metric -> the largest drop allowed against the unpruned model, in `evaluate`'s units.
        target: "params", "macs" or "channels".
        step, max_ratio: the reduction added per step, and where to stop at the latest.
        importance: the criterion (default "task_taylor").
        recovery: the fine-tune after every step (default `FinetuneConfig(epochs=1, max_steps=200, lr=1e-3,
            warmup_steps=20, bn_batches=100)`, no progress bar). Keep `bn_batches` on: without it the running
            BatchNorm statistics of the recovery's last few batches can break a limit the weights would not.
        distill: distillation from `model` during recovery (default `Distill()`).
        measure_latency: time every model against the unpruned one (interleaved, batch of `example_inputs`).
        validate: like `evaluate`, on held-out data of its own. When given, every recovery evaluates it every
            `recovery.eval_every` steps (default: a quarter of `recovery.max_steps`) and at its end, and keeps the
            step whose worst margin to a limit (limit minus drop against the unpruned model, on this data) is
            largest; `evaluate` then judges that step. Without it, every recovery keeps its last step.
        report: like `evaluate`, on data that is only reported: its metrics are recorded in the frontier
            ("report") and never influence a decision. Give it the untouched test data.
        resolution: the bisection stops when the reduction that held and the one that broke are this close.
        remedies: what to try, in order, when a reduction breaks a limit measured on one task (see `metric_tasks`):
            "task_weight" doubles that task's weight in the ranking (criteria with `task_weights`: task_taylor,
            conflict_taylor), "task_groups" keeps whole the channel groups that serve only that task. A remedy that
            holds stays in force for the later steps. () turns them off.
        metric_tasks: which task each limited metric measures, e.g. {"map50": "det", "lane_iou": "lane"}; by
            default the task whose name starts the metric's ("lane" for "lane_iou"). A metric with no task gets no
            remedy, only the bisection.
        checkpoint: a folder to resume from. After every evaluated model it holds the frontier, the model after
            the last reduction that held (a `taskprune.save` file) and the random-number state; a call with the
            same folder and settings carries on where it stopped, and ends as the uninterrupted call would have
            (a finished run returns at once). Created if missing.
        **prune_options: passed to every `prune` (num_batches, round_to, protect, ...).

    A frozen model (`requires_grad_(False)`, whole or in part) and a call inside `torch.no_grad()` or
    `torch.inference_mode()` are pruned and recovered exactly as a plain one (every parameter of the working copies
    trains), and the returned model's parameters require grad as `model`'s do.

    Returns:
        A `WithinResult`: the most-pruned model within every limit and the frontier (one record per evaluated
        model, in order: its asked "ratio", the "remedy" it tried, and its "verdict": True when the reduction
        held, False when it broke for good, None while remedies were left to try).

    Raises:
        ValueError: a limit names a metric `evaluate` does not return (the message lists them), a negative
            limit, step / max_ratio / resolution outside (0, 1), an unknown remedy, or `checkpoint` was written with
            other settings (named).

    Example:
        >>> found = taskprune.prune_within(model, x, tasks=tasks, data=train, evaluate=score_on_validation,
        ...                                report=score_on_test, limits={"lane_iou": 1.0, "map50": 1.0})
        >>> found.result.model, found.reduction
    """
    if not 0 < step < 1 or not 0 < max_ratio < 1 or not 0 < resolution < 1:
        raise ValueError(f"step, max_ratio and resolution must be in (0, 1), got step={step}, "
                         f"max_ratio={max_ratio}, resolution={resolution}")
    unknown = [r for r in remedies if r not in REMEDIES]
    if unknown:
        raise ValueError(f"Unknown remedy {unknown[0]!r}; available: {', '.join(REMEDIES)}")
    caller, model = model, trainable_copy(model)  # trace, score and recover through frozen layers too
    example_inputs = ordinary_tensors(example_inputs)
    recovery = recovery or FinetuneConfig(epochs=1, max_steps=200, lr=1e-3, warmup_steps=20, bn_batches=100,
                                          progress=False, bn_mode="train", keep_best=False, judge_start=False)
    if recovery.keep_best is None:  # prune_within decides: the best step with validate, the last without
        recovery = replace(recovery, keep_best=False)
    distill = distill or Distill()
    base = _checked(dict(evaluate(model)), limits)
    criterion = get_criterion(importance) if isinstance(importance, str) else importance
    kinds = [r for r in remedies if r != "task_weight" or isinstance(criterion, TaskWeighted)]
    by_metric = metric_tasks_of(limits, list(tasks.names), metric_tasks)
    settings = {"target": target, "step": step, "max_ratio": max_ratio, "limits": dict(limits),
                "importance": str(getattr(importance, "name", importance)), "validate": validate is not None,
                "resolution": resolution, "remedies": list(kinds), "metric_tasks": dict(sorted(by_metric.items())),
                **{f"recovery.{k}": v for k, v in recovery.to_dict().items() if k != "progress"},
                **{f"distill.{k}": v for k, v in distill.to_dict().items()},
                **{f"prune.{k}": plain_option(v) for k, v in prune_options.items()}, **criterion_options(importance)}
    margin = None
    if validate is not None:
        margin = _margin(validate, _checked(dict(validate(model)), limits), limits)
        recovery = replace(recovery, best_key="margin", best_mode="max", keep_best=True, eval_every=(
            recovery.eval_every or (max(1, recovery.max_steps // 4) if recovery.max_steps else None)))
    # prune's gradient criteria read batches: a Dataset is batched as the recovery fine-tune batches it
    scoring = DataLoader(data, batch_size=recovery.batch_size, shuffle=True, collate_fn=collate_fn,
                         generator=torch.Generator().manual_seed(recovery.seed)) \
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset) else data
    first = record(0, 0.0, model, model, example_inputs, base, base, limits, 0, False)
    frontier = [{**first, "latency": 1.0 if measure_latency else None, "ratio": 0.0, "remedy": None,
                 "verdict": True, "report": _reported(report, model)}]
    search = Search(SearchSetup(model, example_inputs, tasks, data, limits, base, criterion, recovery, distill,
                                evaluate, collate_fn, margin, report, measure_latency,
                                dict(prune_options, target=target, tasks=tasks, data=scoring)),
                    params_before=first["params"], macs_before=first["macs"])
    state = Checkpoint(checkpoint, settings)
    generator = getattr(scoring, "generator", None)
    finished = False
    if state.exists():
        frontier, best, finished = state.resume(model, example_inputs, generator)
        search.restore(best)
    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        task = bar.add_task("prune within limits", total=None)
        while not finished:
            pending = pending_remedies(frontier, frontier[-1]["ratio"], limits, by_metric, kinds) \
                if frontier[-1]["verdict"] is None else []
            ratio = frontier[-1]["ratio"] if pending else next_ratio(frontier, step, max_ratio, resolution)
            if ratio is None:
                state.write(frontier, search.best, generator, finished=True)
                break
            remedy = pending[0] if pending else None
            bar.update(task, description=f"prune within limits: {ratio:.1%}"
                       + (f" ({remedy.label})" if remedy else ""))
            entry = search.attempt(len(frontier), ratio, remedy, frontier)
            if not entry["within"]:
                left = pending_remedies([*frontier, entry], ratio, limits, by_metric, kinds)
                entry["verdict"] = None if left else False
            frontier.append(entry)
            state.write(frontier, search.best, generator, finished=False)
            bar.advance(task)
    best = search.best or _unpruned(model, example_inputs, frontier[0])
    restore_requires_grad(best.model, caller)
    return WithinResult(result=best, frontier=frontier, limits=dict(limits))


def _checked(base: dict[str, float], limits: Mapping[str, float]) -> dict[str, float]:
    unknown = sorted(set(limits) - set(base))
    if unknown:
        raise ValueError(f"limits name metric(s) {unknown} that evaluate does not return; it returns: "
                         f"{', '.join(base)}")
    negative = {k: v for k, v in limits.items() if not v >= 0}
    if negative:
        raise ValueError(f"limits must be drops >= 0, got {negative}")
    return base


def _margin(validate: Evaluate, base: Mapping[str, float], limits: Mapping[str, float]
            ) -> Callable[[nn.Module], dict[str, float]]:
    """The recoveries' eval_fn: the smallest of limit minus drop over the limited metrics, on `validate`'s data."""

    def margin(student: nn.Module) -> dict[str, float]:
        metrics = validate(student)
        return {"margin": min((limit - (base[name] - float(metrics[name])) for name, limit in limits.items()),
                              default=0.0)}

    return margin


def _reported(report: Evaluate | None, model: nn.Module) -> dict[str, float] | None:
    return None if report is None else {k: float(v) for k, v in report(model).items()}


def _unpruned(model: nn.Module, example_inputs: Any, first: Mapping[str, Any]) -> PruneResult:
    from ..reporting import PruneReport

    report = PruneReport(criterion="-", target="params", ratio=0.0, reached=0.0, params_before=first["params"],
                         params_after=first["params"], macs_before=first["macs"], macs_after=first["macs"],
                         warnings=["prune_within: already the first step broke a limit; nothing was removed"])
    return PruneResult(model=copy_model(model), report=report, history=[], channel_map={},
                       example_inputs=example_inputs)
