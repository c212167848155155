"""`finetune`: train a pruned student on its tasks, with feature distillation from the unpruned teacher.

The loop around `TrainStep`: epochs over the data (each rank its shard under torchrun), the warmup + cosine
schedule, evaluation and the best checkpoint on rank 0, a progress bar. Settings are a `FinetuneConfig`, or the
same fields as keywords.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from dataclasses import fields, replace
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, IterableDataset

from .._runtime import preserved_modes, world
from ..distill import Distill
from ..safety import run_model
from ..tasks import MultiTaskAdapter
from .batchnorm import BATCH_NORMS, recompute_bn_stats
from .config import FinetuneConfig, cosine_lr
from .judge import EvalFn, Judge, save_state, validation_loss
from .step import TrainStep, to_device

__all__ = ["finetune"]

_FIELDS = {f.name for f in fields(FinetuneConfig)}


def _strided(batches: Iterable[Any], rank: int, size: int) -> Iterator[Any]:
    """Batch i goes to rank i % size; an incomplete last round is dropped so every rank runs the same steps."""
    mine = None
    for index, batch in enumerate(batches):
        if index % size == rank:
            mine = batch
        if index % size == size - 1:
            yield mine


class _Shards:
    """This rank's batches for each epoch, and how many there are (None when the data has no length)."""

    def __init__(self, data: Any, batch_size: int, collate_fn: Callable[[list[Any]], Any] | None, seed: int,
                 shuffle: bool = True):
        self.rank, self.world = world()
        self.sampler: DistributedSampler | None = None
        if isinstance(data, Dataset) and not isinstance(data, IterableDataset):
            if self.world > 1 and shuffle:
                self.sampler = DistributedSampler(data, self.world, self.rank, shuffle=True, seed=seed)
            self.loader: Iterable[Any] = DataLoader(
                data, batch_size=batch_size, shuffle=shuffle and self.sampler is None, sampler=self.sampler,
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


def _refresher(student: nn.Module, shards: _Shards, tasks: MultiTaskAdapter, config: FinetuneConfig
               ) -> Callable[[], None]:
    """PreciseBN on the first `bn_batches` of the epoch after the last, without moving any random state, so
    evaluating mid-training leaves the training order as it was. The student is unwrapped, its BatchNorms in
    their training modes."""

    def refresh() -> None:
        generator = getattr(shards.loader, "generator", None)
        state = generator.get_state() if isinstance(generator, torch.Generator) else None
        with torch.random.fork_rng(devices=[]):
            recompute_bn_stats(student, shards.epoch(config.epochs), tasks, config.bn_batches)
        if isinstance(generator, torch.Generator) and state is not None:
            generator.set_state(state)

    return refresh


def finetune(student: nn.Module, tasks: MultiTaskAdapter, data: Any, *, epochs: int | None = None,
             teacher: nn.Module | None = None, distill: Distill | None = None,
             channel_map: Mapping[str, list[int]] | None = None, config: FinetuneConfig | None = None,
             eval_fn: EvalFn | None = None, val_data: Any = None, checkpoint: str | os.PathLike[str] | None = None,
             collate_fn: Callable[[list[Any]], Any] | None = None, **options: Any) -> nn.Module:
    """Train `student` on the tasks' weighted losses, plus feature distillation from `teacher` when given.

    Safe for a pretrained model by default: BatchNorm statistics frozen, a fine-tuning learning rate, and with a
    judge (`val_data=` or `eval_fn=`) the best evaluated state returned, the unrecovered model among the
    candidates, with a `RuntimeWarning` when training ended worse than it started (see `FinetuneConfig`).

    Args:
        student: the model to train (in place), usually `PruneResult.model`; it stays on its device. A student in
            eval mode (as `prune` returns an eval model) trains as a whole; one in train mode trains in the modes
            its owner set (a frozen, eval-mode BatchNorm stays frozen). It is given back in its own modes.
        tasks: the `Tasks` (losses for every task; `tasks.weight(name)` weighs them).
        data: a map-style Dataset (batched with `batch_size` and `collate_fn`, shuffled with `seed`) or a
            re-iterable of batches such as a DataLoader or a list.
        epochs: passes over `data` (a `FinetuneConfig` field, given here or in `config`).
        teacher: the unpruned model; turns on distillation (moved to the student's device, run in eval mode).
        distill: the `Distill` config (default `Distill()` when a teacher is given).
        channel_map: `PruneResult.channel_map`, to align the student's channels with the teacher's.
        config: a `FinetuneConfig`; keywords in `options` (its field names: lr, max_steps, warmup_steps, ...)
            override its fields.
        eval_fn: `eval_fn(student) -> {metric: value}`, called in eval mode on rank 0 every `eval_every` steps
            (default: after every epoch), at the end (again after `bn_batches` re-estimated the statistics) and,
            when the best is kept, before the first step.
        val_data: validation batches (a re-iterable of batches, or a Dataset batched with `batch_size` and
            `collate_fn`) kept apart from `data`; without `eval_fn` they judge the fine-tune by the tasks'
            weighted loss ("val_loss", lower is better).
        checkpoint: where to torch.save the student's state_dict: at each new best, or at the end without eval_fn.
        collate_fn: how a Dataset's items become a batch.

    Returns:
        The trained student (the same object, unwrapped).

    Raises:
        ValueError: an unknown option, optimizer or bn_mode (the message lists the valid ones), a bad number,
            distill or channel_map without a teacher, both eval_fn and val_data, data that gives no step.
        RuntimeError: a non-finite loss (names the step and every task's loss).

    Example:
        >>> taskprune.finetune(result.model, tasks, loader, epochs=10, teacher=model, channel_map=result.channel_map)
    """
    config = _config(config, epochs, options)
    if teacher is None and (distill is not None or channel_map is not None):
        raise ValueError("distill= and channel_map= need teacher= (the unpruned model to distil from)")
    shards = _Shards(data, config.batch_size, collate_fn, config.seed)
    if shards.steps is None and config.max_steps is None:
        raise ValueError("data has no len(); pass max_steps= so the learning-rate schedule has an end")
    total = min(v for v in (None if shards.steps is None else config.epochs * shards.steps, config.max_steps)
                if v is not None)
    if total < 1:
        raise ValueError(f"data gives no batch to rank {shards.rank} of {shards.world}")
    example = None
    if teacher is not None:
        first = next(iter(shards.epoch(0)), None)
        if first is None:
            raise ValueError("data gives no batch")
        example = tasks.model_inputs(to_device(first, next(student.parameters()).device))
        # run once before the distiller traces a copy with it, so that a batch that does not fit is named
        with preserved_modes(student, eval=True):
            run_model(student, example, "finetune's batch 0 (the distiller's example)")
    step = TrainStep(student, tasks, optimizer=config.optimizer, lr=config.lr, weight_decay=config.weight_decay,
                     grad_clip=config.grad_clip, teacher=teacher, distill=distill, channel_map=channel_map,
                     example_inputs=example)
    mode = config.best_mode
    if val_data is not None:
        if eval_fn is not None:
            raise ValueError("give eval_fn= or val_data=, not both (an eval_fn can read the validation data itself)")
        eval_fn, mode = validation_loss(tasks, _Shards(val_data, config.batch_size, collate_fn, config.seed,
                                                       shuffle=False).loader), "min"
    if config.keep_best and (eval_fn is None or shards.world > 1):
        raise ValueError("keep_best needs eval_fn= or val_data= and a single process (evaluation runs on rank 0 "
                         "only)")
    refresh = _refresher(student, shards, tasks, config) if config.bn_batches else None
    judge = Judge(student, eval_fn, config, mode, checkpoint, shards.rank, shards.world, refresh)
    with preserved_modes(student):
        try:
            with _display(config.progress and shards.rank == 0, total) as (advance, log):
                judge.judge_start(log)
                _train_modes(student, config.bn_mode)
                _loop(step, shards, config, total, advance, lambda: judge(step.steps, log))
                step.remove()  # the distiller's hooks are off before the student runs again
                judge.fresh(step.steps)
                judge(step.steps, log)
        finally:
            step.remove()
    judge.finish()
    if checkpoint is not None and eval_fn is None and shards.rank == 0:
        save_state(student.state_dict(), checkpoint)
    return student


def _train_modes(student: nn.Module, bn_mode: str) -> None:
    """A student in eval mode trains as a whole; one in train mode keeps its owner's modes. With bn_mode "frozen"
    every BatchNorm is then put in eval mode (the `preserved_modes` around training gives the modes back)."""
    if not student.training:
        student.train()
    if bn_mode == "frozen":
        for module in student.modules():
            if isinstance(module, BATCH_NORMS):
                module.eval()


def _loop(step: TrainStep, shards: _Shards, config: FinetuneConfig, total: int, advance: Callable[[str], None],
          evaluate: Callable[[], None]) -> None:
    for epoch in range(config.epochs):
        for batch in shards.epoch(epoch):
            losses = step(batch, cosine_lr(step.steps, total, config.warmup_steps))
            advance(" ".join(f"{name} {value:.3f}" for name, value in losses.items()))
            if config.eval_every is not None and step.steps % config.eval_every == 0:
                evaluate()
            if step.steps >= total:
                break
        if config.eval_every is None:
            evaluate()
        if step.steps >= total:
            break


def _config(config: FinetuneConfig | None, epochs: int | None, options: dict[str, Any]) -> FinetuneConfig:
    unknown = sorted(set(options) - _FIELDS)
    if unknown:
        raise ValueError(f"unknown finetune option(s) {unknown}; valid: {', '.join(sorted(_FIELDS))}")
    if epochs is not None:
        options["epochs"] = epochs
    if config is None:
        if "epochs" not in options:
            raise ValueError("finetune needs epochs= (or a FinetuneConfig with epochs)")
        return FinetuneConfig(**options)
    if not isinstance(config, FinetuneConfig):
        raise TypeError(f"config must be a taskprune.FinetuneConfig, got {type(config).__name__}")
    return replace(config, **options)
