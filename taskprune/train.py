"""Fine-tuning a pruned student: weighted task losses plus feature distillation, under torchrun too.

Total loss per step: sum_t w_t L_t + alpha * sum_l KD_l (see `taskprune.distill`). AdamW or SGD, linear warmup then
a cosine decay to zero, gradient-norm clipping, mixed precision on CUDA. Under torch.distributed (torchrun) the
student is wrapped in DistributedDataParallel, each rank takes its shard of the data, and only rank 0 prints,
evaluates and saves.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from ._runtime import preserved_modes
from .distill import Distill, FeatureDistiller
from .tasks import MultiTaskAdapter, call_model, task_loss

__all__ = ["OPTIMIZERS", "cosine_lr", "cosine_schedule", "finetune"]

OPTIMIZERS = ("adamw", "sgd")
EvalFn = Callable[[nn.Module], Mapping[str, float]]


def cosine_lr(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Learning-rate factor for 0-based `step`: (step + 1) / warmup_steps during warmup, then
    0.5 * (1 + cos(pi * (step - warmup_steps) / (total_steps - warmup_steps))), which decays from 1 towards 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler applying `cosine_lr` to every parameter group's initial learning rate; step it once per step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_lr(step, total_steps, warmup_steps))


def _check_arguments(epochs: int, optimizer: str, lr: float, weight_decay: float, warmup_steps: int,
                     grad_clip: float | None, eval_every: int | None, best_mode: str, max_steps: int | None) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; available: {', '.join(OPTIMIZERS)}")
    if best_mode not in ("max", "min"):
        raise ValueError(f"best_mode must be 'max' or 'min', got {best_mode!r}")
    for name, value, minimum in (("epochs", epochs, 1), ("warmup_steps", warmup_steps, 0),
                                 ("eval_every", eval_every, 1), ("max_steps", max_steps, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    for name, number, strict in (("lr", lr, True), ("weight_decay", weight_decay, False), ("grad_clip", grad_clip, True)):
        if number is not None and not (math.isfinite(number) and (number > 0 or (number == 0 and not strict))):
            raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {number!r}")


def _world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _strided(batches: Iterable[Any], rank: int, world: int) -> Iterator[Any]:
    """Batch i goes to rank i % world; an incomplete last round is dropped so every rank runs the same steps."""
    mine = None
    for index, batch in enumerate(batches):
        if index % world == rank:
            mine = batch
        if index % world == world - 1:
            yield mine


class _Shards:
    """This rank's batches for each epoch, and how many there are (None when the data has no length)."""

    def __init__(self, data: Any, batch_size: int, collate_fn: Callable[[list[Any]], Any] | None, seed: int):
        self.rank, self.world = _world()
        self.sampler: DistributedSampler | None = None
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
            if self.world > 1:
                self.sampler = DistributedSampler(data, self.world, self.rank, shuffle=True, seed=seed)
            self.loader: Iterable[Any] = DataLoader(
                data, batch_size=batch_size, shuffle=self.sampler is None, sampler=self.sampler,
                collate_fn=collate_fn, generator=torch.Generator().manual_seed(seed))
            self.steps: int | None = len(self.loader)  # type: ignore[arg-type]
        elif isinstance(data, Iterable):
            if iter(data) is data:
                raise TypeError("data must be iterable more than once (a DataLoader, a Dataset or a list of "
                                "batches), not an iterator or generator")
            self.loader = data
            self.steps = len(data) // self.world if isinstance(data, Sized) else None
        else:
            raise TypeError(f"data must be a Dataset or an iterable of batches, got {type(data).__name__}")

    def epoch(self, epoch: int) -> Iterable[Any]:
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
            return self.loader
        return _strided(self.loader, self.rank, self.world) if self.world > 1 else self.loader


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(_to_device(value, device) for value in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def _make_optimizer(name: str, params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.Optimizer:
    # Norm scales and biases (1-D) are not decayed: shrinking them changes what the layer computes, not its size.
    groups = [{"params": [p for p in params if p.dim() > 1], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=lr)


@contextmanager
def _display(enabled: bool, total: int) -> Iterator[tuple[Callable[[str], None], Callable[[str], None]]]:
    """(advance(losses text), log(message)): a rich progress bar, or nothing when disabled."""
    if not enabled:
        yield (lambda text: None), (lambda text: None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("finetune"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[losses]}"))
    with Progress(*columns) as bar:
        task = bar.add_task("finetune", total=total, losses="")
        yield (lambda text: bar.update(task, advance=1, losses=text)), bar.console.print


def _save(state: Mapping[str, torch.Tensor], path: str | os.PathLike[str]) -> None:
    """torch.save to a temporary file then rename, so a crash never leaves a half-written checkpoint."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    torch.save(dict(state), partial)
    os.replace(partial, target)


def finetune(student: nn.Module, tasks: MultiTaskAdapter, data: Any, *, epochs: int,
             teacher: nn.Module | None = None, distill: Distill | None = None,
             channel_map: Mapping[str, list[int]] | None = None, optimizer: str = "adamw", lr: float = 1e-3,
             weight_decay: float = 1e-4, warmup_steps: int = 0, grad_clip: float | None = 10.0,
             eval_fn: EvalFn | None = None, eval_every: int | None = None, best_key: str | None = None,
             best_mode: str = "max", checkpoint: str | os.PathLike[str] | None = None, progress: bool = True,
             max_steps: int | None = None, batch_size: int = 16,
             collate_fn: Callable[[list[Any]], Any] | None = None, seed: int = 0) -> nn.Module:
    """Train `student` on the tasks' weighted losses, plus feature distillation from `teacher` when given.

    Args:
        student: the model to train (in place), usually `PruneResult.model`; it stays on its device.
        tasks: the `Tasks` (losses for every task; `tasks.weight(name)` weighs them).
        data: a map-style Dataset (batched here with `batch_size`, `collate_fn`, shuffled with `seed`) or a
            re-iterable of batches such as a DataLoader or a list.
        epochs: passes over `data`.
        teacher: the unpruned model; turns on distillation (moved to the student's device, kept in eval mode).
        distill: the `Distill` config (default `Distill()` when a teacher is given).
        channel_map: `PruneResult.channel_map`, to align the student's channels with the teacher's.
        optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov); 1-D parameters get no weight decay.
        lr, weight_decay: peak learning rate and decoupled weight decay.
        warmup_steps: linear warmup steps before the cosine decay (see `cosine_lr`).
        grad_clip: maximum gradient norm over the trained parameters; None turns clipping off.
        eval_fn: `eval_fn(student) -> {metric: value}`, called in eval mode on rank 0 every `eval_every` steps
            (default: after every epoch) and at the end.
        best_key, best_mode: the metric that decides the best checkpoint and whether higher ("max") or lower
            ("min") is better; `best_key` may be left out when `eval_fn` returns one metric.
        checkpoint: where to torch.save the student's state_dict: at each new best, or at the end without eval_fn.
        progress: show a rich progress bar with the per-task losses (rank 0 only).
        max_steps: stop after this many optimizer steps (the schedule spans them); needed for data without len().
        seed: shuffling seed for a Dataset.

    Returns:
        The trained student (the same object, unwrapped, in the train/eval mode it came in).

    Raises:
        ValueError: an unknown optimizer (lists "adamw, sgd"), a bad number, distill or channel_map without a
            teacher, data that gives no step.
        RuntimeError: a non-finite loss (names the step and every task's loss).
    """
    _check_arguments(epochs, optimizer, lr, weight_decay, warmup_steps, grad_clip, eval_every, best_mode, max_steps)
    if teacher is None and (distill is not None or channel_map is not None):
        raise ValueError("distill= and channel_map= need teacher= (the unpruned model to distil from)")
    shards = _Shards(data, batch_size, collate_fn, seed)
    if shards.steps is None and max_steps is None:
        raise ValueError("data has no len(); pass max_steps= so the learning-rate schedule has an end")
    total = min(v for v in (None if shards.steps is None else epochs * shards.steps, max_steps) if v is not None)
    if total < 1:
        raise ValueError(f"data gives no batch to rank {shards.rank} of {shards.world}")
    first_param = next(student.parameters(), None)
    if first_param is None:
        raise ValueError("student has no parameters to train")
    device = first_param.device
    model: nn.Module = student
    if shards.world > 1:
        model = nn.parallel.DistributedDataParallel(student, device_ids=[device] if device.type == "cuda" else None)
    distiller = None
    if teacher is not None:
        first = next(iter(shards.epoch(0)), None)
        if first is None:
            raise ValueError("data gives no batch")
        example = tasks.model_inputs(_to_device(first, device))
        distiller = FeatureDistiller(teacher.to(device), model, distill or Distill(), channel_map,
                                     example_inputs=example, tasks=tasks)
    adapters = list(distiller.parameters()) if distiller is not None else []
    params = [p for p in student.parameters() if p.requires_grad] + adapters
    opt = _make_optimizer(optimizer, params, lr, weight_decay)
    schedule = cosine_schedule(opt, total, warmup_steps)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    weight = getattr(tasks, "weight", lambda name: 1.0)  # the MultiTaskAdapter protocol has no weights
    best: float | None = None
    evaluated_at = -1

    def evaluate() -> None:
        nonlocal best, evaluated_at
        if shards.rank != 0 or eval_fn is None or evaluated_at == step:
            return
        evaluated_at = step
        with torch.no_grad(), preserved_modes(student, eval=True):
            metrics = dict(eval_fn(student))
        line = f"step {step}: " + ", ".join(f"{k} {float(v):.4g}" for k, v in metrics.items())
        key = best_key if best_key is not None else (next(iter(metrics)) if len(metrics) == 1 else None)
        if key is None and checkpoint is None:
            log(line)
            return
        if key is None or key not in metrics:
            raise ValueError(f"best_key {best_key!r} is not among eval_fn's metrics: {', '.join(metrics)}")
        value = float(metrics[key])
        if best is None or (value > best if best_mode == "max" else value < best):
            best = value
            if checkpoint is not None:
                _save(student.state_dict(), checkpoint)
        log(f"{line} (best {key} {best:.4g})")

    step = 0
    with preserved_modes(student):
        if not student.training:
            # a student in eval mode (as prune returns an eval model) trains as a whole; in train mode, every
            # submodule keeps the mode its owner set, so a frozen (eval-mode) BatchNorm stays frozen
            student.train()
        try:
            with _display(progress and shards.rank == 0, total) as (advance, log):
                for epoch in range(epochs):
                    for batch in shards.epoch(epoch):
                        batch = _to_device(batch, device)
                        inputs = tasks.model_inputs(batch)
                        with torch.autocast("cuda", enabled=True) if use_amp else nullcontext():
                            if distiller is not None:
                                kd_loss, outputs = distiller(inputs)
                            else:
                                kd_loss, outputs = None, call_model(model, inputs)
                            losses = {name: task_loss(tasks, name, outputs, batch) for name in tasks.names}
                        loss = sum((weight(name) * value.float() for name, value in losses.items()),
                                   torch.zeros((), device=device))
                        if kd_loss is not None:
                            losses["kd"] = kd_loss
                            loss = loss + kd_loss.float()
                        if not torch.isfinite(loss):
                            values = ", ".join(f"{name} {value.item():.4g}" for name, value in losses.items())
                            raise RuntimeError(f"non-finite loss at step {step}: {values}")
                        opt.zero_grad(set_to_none=True)
                        scaler.scale(loss).backward()
                        if shards.world > 1:  # DDP averages the student's gradients; the adapters' are ours to average
                            for p in adapters:
                                if p.grad is not None:
                                    dist.all_reduce(p.grad)
                                    p.grad /= shards.world
                        if grad_clip is not None:
                            scaler.unscale_(opt)
                            nn.utils.clip_grad_norm_(params, grad_clip)
                        scaler.step(opt)
                        scaler.update()
                        schedule.step()
                        step += 1
                        advance(" ".join(f"{name} {value.item():.3f}" for name, value in losses.items()))
                        if eval_every is not None and step % eval_every == 0:
                            evaluate()
                        if step >= total:
                            break
                    if eval_every is None:
                        evaluate()
                    if step >= total:
                        break
                evaluate()
        finally:
            if distiller is not None:
                distiller.remove()
    if checkpoint is not None and eval_fn is None and shards.rank == 0:
        _save(student.state_dict(), checkpoint)
    return student
