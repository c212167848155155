"""How `prune_within` searches: the next reduction to try, read from the frontier alone, and the remedies it tries
when a limit breaks on one task.

The search steps forward by `step` while every limit holds. Once a reduction breaks a limit (after its remedies),
it bisects between the largest reduction that held and the smallest that broke, until they are `resolution` apart.
Everything it needs is in the frontier, so a run resumed from a checkpoint continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from ..budget import UnreachableBudget
from ..distill import Distill
from ..prune import PruneResult, prune
from ..tasks import MultiTaskAdapter
from ..train import FinetuneConfig, finetune
from .loop import Steps

__all__ = ["REMEDIES", "Remedy", "Search", "SearchSetup", "accepted_remedies", "failing_tasks", "metric_tasks_of",
           "next_ratio", "pending_remedies", "record", "within_limits"]

Evaluate = Callable[[nn.Module], Mapping[str, float]]

REMEDIES = ("task_weight", "task_groups")
_EPS = 1e-9


@dataclass(frozen=True)
class Remedy:
    """A change to the pruning that spares one task: "task_weight" doubles the task's weight in the ranking (the
    criterion's `task_weights`), "task_groups" keeps whole the channel groups that serve only that task."""

    kind: str
    task: str

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.task}"


def next_ratio(frontier: Sequence[Mapping[str, Any]], step: float, max_ratio: float,
               resolution: float) -> float | None:
    """The next reduction to try, or None when the search is over.

    Only final verdicts count (an entry whose "verdict" is True or False): the largest asked reduction that held
    is `low`, the smallest that broke is `high`. Without a break, `low + step` (up to `max_ratio`); with one, the
    midpoint, until `high - low <= resolution`.
    """
    verdicts = [(f["ratio"], f["verdict"]) for f in frontier if f.get("verdict") is not None]
    low = max((ratio for ratio, held in verdicts if held), default=0.0)
    high = min((ratio for ratio, held in verdicts if not held), default=None)
    if high is None:
        ahead = min(max_ratio, low + step)
        return ahead if ahead > low + _EPS else None
    if high - low <= resolution + _EPS:
        return None
    return (low + high) / 2


def failing_tasks(entry: Mapping[str, Any], limits: Mapping[str, float], metric_tasks: Mapping[str, str]
                  ) -> list[str]:
    """The tasks whose metrics broke a limit in `entry`, in the order of `limits` (metrics with no task left out)."""
    tasks = []
    for metric, limit in limits.items():
        task = metric_tasks.get(metric)
        if task is not None and entry["drop"].get(metric, 0.0) > limit and task not in tasks:
            tasks.append(task)
    return tasks


def pending_remedies(frontier: Sequence[Mapping[str, Any]], ratio: float, limits: Mapping[str, float],
                     metric_tasks: Mapping[str, str], kinds: Sequence[str]) -> list[Remedy]:
    """The remedies still to try at `ratio`: one of each kind per task that broke a limit in the plain attempt,
    minus those already tried (a resumed run carries on after the last one)."""
    tried = [f for f in frontier if abs(f.get("ratio", -1.0) - ratio) < _EPS]
    plain = next((f for f in tried if f.get("remedy") is None), None)
    if plain is None:
        return []
    done = {f["remedy"] for f in tried if f.get("remedy") is not None}
    remedies = [Remedy(kind, task) for kind in kinds for task in failing_tasks(plain, limits, metric_tasks)]
    return [r for r in remedies if r.label not in done]


def accepted_remedies(frontier: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The remedies of the entries that held, in order: later steps keep them."""
    return [{"remedy": f["remedy"], "protect": list(f.get("protected", ()))}
            for f in frontier if f.get("verdict") and f.get("remedy")]


def metric_tasks_of(limits: Mapping[str, float], task_names: Sequence[str],
                    given: Mapping[str, str] | None) -> dict[str, str]:
    """Which task each limited metric measures: `given` (checked against the task names), else the task whose name
    starts the metric's ("lane" for "lane_iou"); metrics matching no task get no remedy."""
    if given is not None:
        unknown = sorted(set(given.values()) - set(task_names))
        if unknown:
            raise ValueError(f"metric_tasks names task(s) {unknown} the model does not have; tasks: "
                             f"{', '.join(task_names)}")
        return dict(given)
    found = {}
    for metric in limits:
        task = next((t for t in task_names if metric.startswith(t)), None)
        if task is not None:
            found[metric] = task
    return found


def within_limits(base: Mapping[str, float], metrics: Mapping[str, float], limits: Mapping[str, float]) -> bool:
    return all(base[name] - metrics[name] <= limit for name, limit in limits.items())


def record(step: int, reduction: float, model: nn.Module, dense: nn.Module, example_inputs: Any,
           metrics: Mapping[str, float], base: Mapping[str, float], limits: Mapping[str, float], rounds: int,
           measure_latency: bool) -> dict[str, Any]:
    """One frontier entry: the model's size, latency against `dense` (the median ratio of _LATENCY_ROUNDS
    interleaved rounds, with its interquartile range), metrics and drops, and whether it held."""
    from ..graph import count_macs, count_params

    latency = _latency_ratio(dense, model, example_inputs) if measure_latency else {"latency": None}
    return {"step": step, "reduction": reduction, "params": count_params(model),
            "macs": count_macs(model, example_inputs), **latency, **{k: float(v) for k, v in metrics.items()},
            "drop": {name: base[name] - float(metrics[name]) for name in limits},
            "within": within_limits(base, metrics, limits), "recovery_rounds": rounds}


_LATENCY_ROUNDS = 11


def _latency_ratio(dense: nn.Module, model: nn.Module, example_inputs: Any) -> dict[str, Any]:
    """`model`'s latency as a fraction of `dense`'s: per round the ratio of two forwards a moment apart, then the
    median ("latency"), the quartiles ("latency_spread") and the number of rounds ("latency_repeats")."""
    import statistics

    from ..latency import measure_rounds

    dense_s, model_s = measure_rounds([dense, model], example_inputs, 2, _LATENCY_ROUNDS)
    ratios = [m / d for m, d in zip(model_s, dense_s, strict=True)]
    q1, median, q3 = statistics.quantiles(ratios, n=4)
    return {"latency": median, "latency_spread": [q1, q3], "latency_repeats": _LATENCY_ROUNDS}


@dataclass(frozen=True)
class SearchSetup:
    """What every attempt of a `prune_within` search uses, fixed for the whole search."""

    model: nn.Module
    example_inputs: Any
    tasks: MultiTaskAdapter
    data: Any
    limits: Mapping[str, float]
    base: Mapping[str, float]
    criterion: Any
    recovery: FinetuneConfig
    distill: Distill
    evaluate: Evaluate
    collate_fn: Callable[[list[Any]], Any] | None = None
    margin: Evaluate | None = None
    report: Evaluate | None = None
    measure_latency: bool = True
    prune_options: Mapping[str, Any] = field(default_factory=dict)


class Search:
    """The state of a search between attempts: the model after the last reduction that held (`best`), and how to
    try the next reduction from it."""

    def __init__(self, setup: SearchSetup, params_before: int, macs_before: int) -> None:
        self.setup = setup
        self.best: PruneResult | None = None
        self.steps = Steps(setup.model, params_before=params_before, macs_before=macs_before)

    def restore(self, best: PruneResult | None) -> None:
        """Carry on from a checkpoint's model (None: nothing had held yet)."""
        if best is not None:
            self.best, self.steps = best, Steps.resumed(best)

    def attempt(self, index: int, ratio: float, remedy: Remedy | None, frontier: Sequence[Mapping[str, Any]]
                ) -> dict[str, Any]:
        """Prune the last model that held to `ratio` (with the remedies that held before, and `remedy`), recover
        (a second round when a limit is still broken), evaluate; accept it when every limit holds."""
        s = self.setup
        weights: dict[str, float] = {}
        protect = list(s.prune_options.get("protect", ()))
        kept = [r["remedy"] for r in accepted_remedies(frontier)] + ([remedy.label] if remedy else [])
        for label in kept:
            kind, _, task = label.partition(":")
            if kind == "task_weight":
                weights[task] = 2 * weights.get(task, 1.0)
        for earlier in accepted_remedies(frontier):
            protect += earlier["protect"]
        spared = self._task_only_layers(remedy.task, protect) if remedy and remedy.kind == "task_groups" else []
        if remedy and remedy.kind == "task_groups" and not spared:  # nothing serves the task alone: no change
            plain = next(f for f in frontier if f.get("ratio") == ratio and f.get("remedy") is None)
            return {**plain, "step": index, "remedy": remedy.label, "protected": [], "recovery_rounds": 0,
                    "verdict": None}
        criterion = s.criterion.with_task_weights(weights) if weights else s.criterion
        options = {**s.prune_options, "importance": criterion, "protect": [*protect, *spared]}
        try:
            result = prune(self.steps.model, s.example_inputs, ratio=self.steps.step_ratio(ratio), progress=False,
                           **options)
        except UnreachableBudget as error:  # too fine a step for the channels left, or nothing left to remove
            return {"step": index, "reduction": None, "ratio": ratio, "remedy": remedy.label if remedy else None,
                    "protected": spared, "refused": str(error), "within": False, "verdict": None, "drop": {},
                    "recovery_rounds": 0, "report": None}
        pruned = self.steps.then(result)
        student, rounds, metrics = result.model, 0, {}
        while rounds < 2:  # one recovery, and one more when a limit is broken after it
            student = finetune(student, s.tasks, s.data, teacher=s.model, distill=s.distill,
                               channel_map=pruned.channel_map, config=s.recovery, collate_fn=s.collate_fn,
                               eval_fn=s.margin)
            rounds += 1
            metrics = dict(s.evaluate(student))
            if within_limits(s.base, metrics, s.limits):
                break
        entry = record(index, pruned.reached, student, s.model, s.example_inputs, metrics, s.base, s.limits, rounds,
                       s.measure_latency)
        entry.update(ratio=ratio, remedy=remedy.label if remedy else None, protected=spared,
                     verdict=True if entry["within"] else None,
                     report=None if s.report is None else {k: float(v) for k, v in s.report(student).items()})
        if entry["within"]:
            self.steps = self.steps.then(result, model=student)
            self.best = self.steps.result(result, ratio=ratio)
        return entry

    def _task_only_layers(self, task: str, protect: list[str]) -> list[str]:
        """The layers of the channel groups that serve `task` alone in the current model."""
        from ..reporting import inspect

        found = inspect(self.steps.model, self.setup.example_inputs, tasks=self.setup.tasks, protect=protect)
        return sorted({layer for group in found.groups if group.tasks == (task,) and not group.kept_whole
                       for layer in group.out_layers})
