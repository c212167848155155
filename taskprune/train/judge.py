"""Judging a fine-tune: evaluations on rank 0, the best state kept (the unrecovered one included), and a warning
when a recovery ends worse than it started. `validation_loss` is the judge `finetune(val_data=...)` builds."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .._runtime import atomic_write, preserved_modes
from ..tasks import MultiTaskAdapter, call_model, task_loss
from .config import FinetuneConfig
from .step import to_device

__all__ = ["VALIDATION_LOSS", "EvalFn", "Judge", "save_state", "validation_loss"]

EvalFn = Callable[[nn.Module], Mapping[str, float]]
VALIDATION_LOSS = "val_loss"


def validation_loss(tasks: MultiTaskAdapter, batches: Iterable[Any]) -> EvalFn:
    """An `eval_fn` giving {"val_loss": the tasks' weighted loss averaged over `batches`} (lower is better).

    Raises (when called):
        ValueError: `batches` gave no batch.
    """
    weight = getattr(tasks, "weight", lambda name: 1.0)  # the MultiTaskAdapter protocol has no weights

    def evaluate(model: nn.Module) -> dict[str, float]:
        device = next(model.parameters()).device
        total, count = 0.0, 0
        for batch in batches:
            batch = to_device(batch, device)
            outputs = call_model(model, tasks.model_inputs(batch))
            total += sum(weight(name) * float(task_loss(tasks, name, outputs, batch)) for name in tasks.names)
            count += 1
        if count == 0:
            raise ValueError("val_data gave no batch to judge the fine-tune on")
        return {VALIDATION_LOSS: total / count}

    return evaluate


def save_state(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """torch.save a state dict atomically."""
    atomic_write(path, lambda partial: torch.save(dict(state), partial))


class Judge:
    """Calls `eval_fn` on rank 0, logs the metrics, keeps the best checkpoint and (when keeping the best) the best
    state. `refresh` runs on every rank before an evaluation after training started (the PreciseBN
    re-estimation, which all-reduces); the start is judged as it was given.

    Args:
        mode: "max" or "min" for the deciding metric (the config's `best_mode`, or "min" for `validation_loss`).
    """

    def __init__(self, student: nn.Module, eval_fn: EvalFn | None, config: FinetuneConfig, mode: str,
                 checkpoint: str | os.PathLike[str] | None, rank: int, world_size: int,
                 refresh: Callable[[], None] | None) -> None:
        self.student, self.eval_fn, self.config, self.mode = student, eval_fn, config, mode
        self.checkpoint, self.refresh = checkpoint, refresh
        self.active = rank == 0 and eval_fn is not None
        keep = config.keep_best if config.keep_best is not None else world_size == 1
        self.keep = keep and eval_fn is not None
        self.best: float | None = None
        self.best_step = -1
        self.start: float | None = None
        self.last: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.done_at = self.refreshed_at = -1

    def judge_start(self, log: Callable[[str], None]) -> None:
        """Evaluate the student before the first step: the unrecovered model is a candidate for the best, and
        the end is compared with it."""
        if self.config.judge_start:
            self.refreshed_at = 0  # the start keeps the statistics it was given
            self(0, log)
            self.start = self.last
            self.refreshed_at = -1

    def __call__(self, step: int, log: Callable[[str], None]) -> None:
        if self.eval_fn is None or self.done_at == step:
            return
        self.done_at = step
        self.fresh(step)
        if not self.active:
            return
        with torch.no_grad(), preserved_modes(self.student, eval=True):
            metrics = dict(self.eval_fn(self.student))
        line = f"step {step}: " + ", ".join(f"{k} {float(v):.4g}" for k, v in metrics.items())
        key = self.config.best_key if self.config.best_key is not None else (
            next(iter(metrics)) if len(metrics) == 1 else None)
        if key is None and self.checkpoint is None and self.config.keep_best is not True:
            self.keep = False  # several metrics and none named: evaluation only reports
            log(line)
            return
        if key is None or key not in metrics:
            raise ValueError(f"best_key {self.config.best_key!r} is not among eval_fn's metrics: {', '.join(metrics)}")
        value = self.last = float(metrics[key])
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best, self.best_step = value, step
            if self.keep:
                self.best_state = {k: v.detach().clone() for k, v in self.student.state_dict().items()}
            if self.checkpoint is not None:
                save_state(self.student.state_dict(), self.checkpoint)
        log(f"{line} (best {key} {self.best:.4g})")

    def fresh(self, step: int) -> None:
        """Re-estimate the BatchNorm statistics for this step, once."""
        if self.refresh is not None and self.refreshed_at != step:
            self.refresh()
            self.refreshed_at = step

    def finish(self) -> None:
        """Put back the best state when keeping it, and warn when training ended worse than it started."""
        if self.start is not None and self.last is not None and (
                self.last < self.start if self.mode == "max" else self.last > self.start):
            kept = (f"the best evaluated state (step {self.best_step}) is returned" if self.keep
                    else "the last state is returned (keep_best=False)")
            warnings.warn(f"finetune ended worse than it started: {self.last:.4g} against {self.start:.4g} at step 0 "
                          f"({'higher' if self.mode == 'max' else 'lower'} is better); {kept}. A lower lr= or more "
                          "data may help.", RuntimeWarning, stacklevel=3)
        if self.keep and self.best_state is not None:
            self.student.load_state_dict(self.best_state)

