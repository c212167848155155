"""`prune_within()`: prune as far as the tasks allow, instead of guessing a ratio.

Pruning goes in steps; after every step the model recovers with a short fine-tune (distilled from the unpruned
model) and is evaluated. The most-pruned model whose every metric stayed within its limit is returned, with the
frontier: what every step reached and cost.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .api import PruneResult, prune
from .distill import Distill
from .iterative import compose_channel_maps
from .tasks import MultiTaskAdapter
from .train import FinetuneConfig, finetune
from .within_checkpoint import Checkpoint, criterion_options, plain_option

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
            here), every metric, "drop" per limited metric, "within" and "recovery_rounds".
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
        from .plots import plot_frontier

        return plot_frontier(self.frontier, self.limits, path)


def prune_within(model: nn.Module, example_inputs: Any, *, tasks: MultiTaskAdapter, data: Any, evaluate: Evaluate,
                 limits: Mapping[str, float], target: str = "params", step: float = 0.1, max_ratio: float = 0.9,
                 importance: Any = "conflict_taylor", recovery: FinetuneConfig | None = None,
                 distill: Distill | None = None, collate_fn: Callable[[list[Any]], Any] | None = None,
                 measure_latency: bool = True, progress: bool = True, validate: Evaluate | None = None,
                 checkpoint: str | os.PathLike[str] | None = None, **prune_options: Any) -> WithinResult:
    """Prune `model` in steps of `step` (cumulative, of `target`) until a metric drops by more than its limit.

    Args:
        model: the unpruned model (left untouched); also the teacher every recovery distils from.
        example_inputs: as for `prune`.
        tasks, data: the tasks with their losses, and the training data (batches for the gradient criteria and
            for the recovery fine-tunes: a Dataset with `collate_fn`, or a re-iterable of batches).
        evaluate: `evaluate(model) -> {metric: value}`, higher is better; called in eval mode.
        limits: metric -> the largest drop allowed against the unpruned model, in `evaluate`'s units.
        target: "params", "macs" or "channels".
        step, max_ratio: the reduction added per step, and where to stop at the latest.
        importance: the criterion (default "conflict_taylor").
        recovery: the fine-tune after every step (default `FinetuneConfig(epochs=1, max_steps=200, lr=1e-3,
            warmup_steps=20, bn_batches=100)`, no progress bar). Keep `bn_batches` on: without it the running
            BatchNorm statistics of the recovery's last few batches can break a limit the weights would not.
        distill: distillation from `model` during recovery (default `Distill()`).
        measure_latency: time every model against the unpruned one (interleaved, batch of `example_inputs`).
        validate: like `evaluate`, on held-out data of its own. When given, every recovery evaluates it every
            `recovery.eval_every` steps (default: a quarter of `recovery.max_steps`) and at its end, and keeps the
            step whose worst margin to a limit (limit minus drop against the unpruned model, on this data) is
            largest; `evaluate` then judges that step. Without it, every recovery keeps its last step.
        checkpoint: a folder to resume from. After every step within the limits it holds the model so far
            (a `taskprune.save` file), the frontier and the random-number state; a call with the same folder and
            settings carries on after the last finished step, and ends as the uninterrupted call would have
            (a finished run returns at once). Created if missing.
        **prune_options: passed to every `prune` (num_batches, round_to, protect, ...).

    Returns:
        A `WithinResult`: the most-pruned model within every limit and the frontier.

    Raises:
        ValueError: a limit names a metric `evaluate` does not return (the message lists them), a negative
            limit, step / max_ratio outside (0, 1), or `checkpoint` was written with other settings (named).

    Example:
        >>> found = taskprune.prune_within(model, x, tasks=tasks, data=train, evaluate=score,
        ...                                limits={"lane_iou": 1.0, "map50": 1.0})
        >>> found.result.model, found.reduction
    """
    if not 0 < step < 1 or not 0 < max_ratio < 1:
        raise ValueError(f"step and max_ratio must be in (0, 1), got step={step}, max_ratio={max_ratio}")
    recovery = recovery or FinetuneConfig(epochs=1, max_steps=200, lr=1e-3, warmup_steps=20, bn_batches=100,
                                          progress=False)
    distill = distill or Distill()
    base = _checked(dict(evaluate(model)), limits)
    settings = {"target": target, "step": step, "max_ratio": max_ratio, "limits": dict(limits),
                "importance": str(getattr(importance, "name", importance)), "validate": validate is not None,
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
    options = dict(prune_options, target=target, importance=importance, tasks=tasks, data=scoring)
    frontier = [_record(0, 0.0, model, model, example_inputs, base, base, limits, 0, False)]
    frontier[0]["latency"] = 1.0 if measure_latency else None  # the unpruned model against itself
    best: PruneResult | None = None
    current, done = model, 0.0
    history: list[list[Any]] = []
    channel_map: dict[str, list[int]] = {}
    ratios = [min(max_ratio, step * k) for k in range(1, int(max_ratio / step + 1e-9) + 1)]
    state = Checkpoint(checkpoint, settings)
    generator = getattr(scoring, "generator", None)
    if state.exists():
        frontier, best, finished = state.resume(model, example_inputs, generator)
        if best is not None:
            current, done, history, channel_map = best.model, best.report.reached, best.history, best.channel_map
        if finished:
            ratios = ratios[:len(frontier) - 1]
    from rich.progress import track

    for index, ratio in enumerate(track(ratios, description="prune within limits", disable=not progress), 1):
        if index < len(frontier):
            continue  # finished before the checkpoint was written
        result = prune(current, example_inputs, ratio=1 - (1 - ratio) / (1 - done), progress=False, **options)
        composed_map = compose_channel_maps(channel_map, result.channel_map)
        student = result.model
        rounds, metrics = 0, {}
        while rounds < 2:  # one recovery, and one more when a limit is broken after it
            student = finetune(student, tasks, data, teacher=model, distill=distill, channel_map=composed_map,
                               config=recovery, collate_fn=collate_fn, eval_fn=margin)
            rounds += 1
            metrics = dict(evaluate(student))
            if _within(base, metrics, limits):
                break
        reached = 1 - (1 - done) * (1 - result.report.reached)
        frontier.append(_record(index, reached, student, model, example_inputs, metrics, base, limits, rounds,
                                measure_latency))
        if not frontier[-1]["within"]:
            state.write(frontier, best, generator, finished=True)
            break
        history = history + result.history
        channel_map, current, done = composed_map, student, reached
        best = replace(result, model=student, history=history, channel_map=channel_map,
                       report=replace(result.report, ratio=ratio, reached=reached,
                                      params_before=frontier[0]["params"], macs_before=frontier[0]["macs"]))
        state.write(frontier, best, generator, finished=index == len(ratios))
    if best is None:
        best = _unpruned(model, example_inputs, frontier[0])
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


def _within(base: Mapping[str, float], metrics: Mapping[str, float], limits: Mapping[str, float]) -> bool:
    return all(base[name] - metrics[name] <= limit for name, limit in limits.items())


def _record(step: int, reduction: float, model: nn.Module, dense: nn.Module, example_inputs: Any,
            metrics: Mapping[str, float], base: Mapping[str, float], limits: Mapping[str, float], rounds: int,
            measure_latency: bool) -> dict[str, Any]:
    from .graph import count_macs, count_params
    from .latency import latency_ratios

    latency = latency_ratios([dense, model], example_inputs, repeats=11)[1] if measure_latency else None
    return {"step": step, "reduction": reduction, "params": count_params(model),
            "macs": count_macs(model, example_inputs), "latency": latency, **{k: float(v) for k, v in metrics.items()},
            "drop": {name: base[name] - float(metrics[name]) for name in limits},
            "within": _within(base, metrics, limits), "recovery_rounds": rounds}


def _unpruned(model: nn.Module, example_inputs: Any, first: Mapping[str, Any]) -> PruneResult:
    from .report import PruneReport

    report = PruneReport(criterion="-", target="params", ratio=0.0, reached=0.0, params_before=first["params"],
                         params_after=first["params"], macs_before=first["macs"], macs_after=first["macs"],
                         warnings=["prune_within: already the first step broke a limit; nothing was removed"])
    return PruneResult(model=copy.deepcopy(model), report=report, history=[], channel_map={},
                       example_inputs=example_inputs)
