"""Training a DrivingNet teacher from scratch on the CPU: epochs over synthetic scenes, a warmup + cosine schedule
that can follow a wall-time budget, resumable checkpoints with the validation curve, evaluation.

Each step is `taskprune.train.TrainStep`, the step `finetune` uses; only the loop (epochs, time budget, per-epoch
records) is the driving example's own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from .._runtime import atomic_write
from ..train import TrainStep, cosine_factor, cosine_lr
from .metrics import evaluate
from .tasks import driving_tasks, loader

__all__ = ["TrainConfig", "train"]


@dataclass(frozen=True)
class TrainConfig:
    """Settings of `train`.

    Args:
        epochs: passes over the training set.
        batch_size: images per step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warmup from lr/20, then cosine decay to lr/20 at the last step.
        seed: seed of the weights' initialisation is the caller's; this one orders the batches.
        eval_every: evaluate on the validation set every this many epochs (and after the last).
        time_limit_minutes: wall-time budget (None: no limit). With a budget the learning-rate schedule follows
            whichever is further along, steps or time, and training stops when the time is up, so a run on a busy
            machine still ends annealed and on time; the record says how many steps were done.
        num_workers: loader processes rendering batches while the model trains.
    """

    epochs: int = 4
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 100
    seed: int = 0
    eval_every: int = 1
    time_limit_minutes: float | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"TrainConfig.num_workers must be a non-negative int, got {self.num_workers!r}")
        for name in ("epochs", "batch_size", "eval_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {getattr(self, name)!r}")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0:
            raise ValueError("TrainConfig needs lr > 0, weight_decay >= 0 and warmup_steps >= 0")


_FLOOR = 0.05  # the schedule ends at 5% of the peak learning rate


def _lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warmup over `warmup` steps, then cosine from 1 to 0.05 as `progress` goes from 0 to 1."""
    if step < warmup:
        return cosine_lr(step, warmup + 1, warmup, _FLOOR)
    return cosine_factor(progress, _FLOOR)


def train(model: nn.Module, train_data: Dataset, val_data: Dataset | None = None,
          config: TrainConfig | None = None, checkpoint: str | Path | None = None, progress: bool = True,
          log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Train `model` on the three driving tasks; returns one record per evaluated epoch.

    Args:
        model: a DrivingNet.
        train_data: training dataset (items as `SyntheticDriving` gives them).
        val_data: validation dataset, evaluated with `evaluate` every `config.eval_every` epochs.
        config: training settings (defaults: `TrainConfig()`).
        checkpoint: path of a resumable checkpoint (model, optimiser, epoch, history) written after every epoch;
            if it exists, training resumes from it.
        progress: show a rich progress bar.
        log: where per-epoch summaries go.

    Returns:
        [{"epoch", "step", "seconds", "loss": {task: mean}, "metrics": {...}}], one per epoch (also the epochs
        before a resume), "metrics" on the evaluated ones.
    """
    config = config or TrainConfig()
    tasks = driving_tasks()
    device = next(model.parameters()).device
    batches = loader(train_data, batch_size=config.batch_size, shuffle=True, seed=config.seed, drop_last=True,
                     num_workers=config.num_workers)
    total_steps = config.epochs * len(batches)
    trainer = TrainStep(model, tasks, lr=config.lr, weight_decay=config.weight_decay, grad_clip=10.0)
    start_epoch, step, history, elapsed = 0, 0, [], 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        try:
            trainer.optimizer.load_state_dict(state["optimizer"])
        except ValueError:  # written before norms and biases had their own group: the moments start again
            log(f"{checkpoint}: optimizer state of another layout, starting the optimizer afresh")
        start_epoch, step, elapsed = int(state["epoch"]), int(state["step"]), float(state["seconds"])
        history = list(state.get("history", []))  # the validation curve so far survives a restart
        log(f"resumed from {checkpoint} after epoch {start_epoch}")

    started = time.perf_counter() - elapsed
    out_of_time = False
    for epoch in range(start_epoch, config.epochs):
        # Reseeding per epoch keeps the batch order the same whether or not the run was resumed.
        batches.generator.manual_seed(config.seed + epoch)  # type: ignore[union-attr]
        sums = {name: 0.0 for name in tasks.names}
        model.train()
        steps_this_epoch = 0
        for batch in _progress(batches, f"epoch {epoch + 1}/{config.epochs}", progress):
            step_progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
            factor = _lr_factor(step, config.warmup_steps, max(step_progress, _time_progress(started, config)))
            losses = trainer(batch, factor)
            step += 1
            steps_this_epoch += 1
            for name in sums:
                sums[name] += losses[name]
            if not progress and step % 50 == 0:
                log(f"step {step}/{total_steps}, {time.perf_counter() - started:.0f} s, lr {config.lr * factor:.2e}, "
                    + ", ".join(f"{name} {value:.3f}" for name, value in losses.items()))
            out_of_time = _time_progress(started, config) >= 1
            if out_of_time:
                break
        record: dict[str, Any] = {"epoch": epoch + 1, "step": step, "seconds": round(time.perf_counter() - started, 1),
                                  "loss": {name: round(value / max(1, steps_this_epoch), 4)
                                           for name, value in sums.items()}}
        last = epoch + 1 == config.epochs or out_of_time
        if val_data is not None and ((epoch + 1) % config.eval_every == 0 or last):
            val_batches = loader(val_data, batch_size=config.batch_size)
            record["metrics"] = {k: round(v, 4) for k, v in evaluate(model, val_batches).items()}
        history.append(record)
        log(f"epoch {epoch + 1}: {record}")
        if checkpoint is not None:
            state = {"model": model.state_dict(), "optimizer": trainer.optimizer.state_dict(), "step": step,
                     "epoch": epoch + 1, "seconds": time.perf_counter() - started, "config": asdict(config),
                     "history": history}
            atomic_write(checkpoint, lambda partial: torch.save(state, partial))  # noqa: B023
        if last:
            break
    return history


def _time_progress(started: float, config: TrainConfig) -> float:
    """Fraction of the time budget used (0 without a budget)."""
    limit = config.time_limit_minutes
    return 0.0 if limit is None else (time.perf_counter() - started) / (60 * limit)


def _progress(batches: Any, description: str, enabled: bool) -> Any:
    if not enabled:
        yield from batches
        return
    # rich is imported here so that importing the driving package does not pull it in.
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        yield from bar.track(batches, total=len(batches), description=description)
