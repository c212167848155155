"""Training a DrivingNet teacher from scratch on the CPU: AdamW, warmup + cosine, checkpoints, evaluation.

This is the driving example's own loop, kept simple and deterministic (seeded shuffling, fixed data). Fine-tuning a
pruned student with distillation is `taskprune.finetune`, not this.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

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


def _lr_factor(step: int, warmup: int, progress: float) -> float:
    """Linear warmup over `warmup` steps, then cosine from 1 to 0.05 as `progress` goes from 0 to 1."""
    floor = 0.05
    if step < warmup:
        return floor + (1 - floor) * step / warmup
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


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
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start_epoch, step, history, elapsed = 0, 0, [], 0.0
    if checkpoint is not None and Path(checkpoint).exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
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
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            batch = {key: value.to(device) for key, value in batch.items()}
            output = model(tasks.model_inputs(batch))
            losses = {name: tasks.loss(name, tasks.task_output(name, output), batch) for name in tasks.names}
            total = torch.stack([tasks.weight(name) * loss for name, loss in losses.items()]).sum()
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=10.0)
            optimizer.step()
            step += 1
            steps_this_epoch += 1
            for name, loss in losses.items():
                sums[name] += float(loss.detach())
            if not progress and step % 50 == 0:
                log(f"step {step}/{total_steps}, {time.perf_counter() - started:.0f} s, lr {config.lr * factor:.2e}, "
                    + ", ".join(f"{name} {float(loss.detach()):.3f}" for name, loss in losses.items()))
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
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                        "epoch": epoch + 1,
                        "seconds": time.perf_counter() - started, "config": asdict(config),
                        "history": history}, checkpoint)
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
