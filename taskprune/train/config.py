"""`FinetuneConfig`, the settings of `finetune`, and the warmup + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .._runtime import known_fields

__all__ = ["BN_MODES", "OPTIMIZERS", "FinetuneConfig", "cosine_factor", "cosine_lr", "cosine_schedule"]

OPTIMIZERS = ("adamw", "sgd")
BN_MODES = ("frozen", "train")


@dataclass(frozen=True)
class FinetuneConfig:
    """How `finetune` trains: the budget, the optimiser and its schedule, evaluation and the data order.

    The defaults are safe for a pretrained model (see docs/recovery.md): a fine-tuning learning rate, BatchNorm
    statistics frozen so that small batches cannot wreck them, and, when there is a judge (`eval_fn=` or
    `val_data=`), the best evaluated state kept with the unrecovered model among the candidates.

    Args:
        epochs: passes over the data.
        max_steps: stop after this many optimizer steps (the schedule spans them); needed for data without len().
        optimizer: "adamw" or "sgd" (momentum 0.9, Nesterov); 1-D parameters get no weight decay.
        lr, weight_decay: peak learning rate (1e-4: a fine-tuning rate; training from scratch wants about 1e-3)
            and decoupled weight decay.
        warmup_steps: linear warmup steps before the cosine decay (see `cosine_lr`).
        grad_clip: maximum gradient norm over the trained parameters; None turns clipping off.
        batch_size: items per batch when the data is a map-style Dataset.
        eval_every: evaluate every this many steps (None: after every epoch), and at the end.
        best_key, best_mode: the metric that decides the best checkpoint and whether higher ("max") or lower
            ("min") is better; `best_key` may be left out when the evaluation returns one metric.
        keep_best: at the end, put back the weights and BatchNorm statistics of the best evaluation (by
            `best_key`). None (the default) keeps the best whenever there is a judge with one deciding metric;
            True insists on one (`eval_fn` or `val_data`) and a single process; False keeps the last state.
        judge_start: with a judge, evaluate the student before the first step too: the unrecovered model is a
            candidate for the best (so a recovery that keeps the best never returns something worse on the judge
            than it was given), and a `RuntimeWarning` says when training ended worse than it started.
        bn_mode: "frozen" (the default) trains with every BatchNorm in eval mode: its running statistics stay the
            pretrained ones and normalise every batch, and its scale and shift still train. "train" normalises by
            each batch's statistics and updates the running averages (what training from scratch wants; a
            pretrained model fine-tuned on batches of a few images can lose most of its accuracy that way).
        bn_batches: re-estimate the running statistics of the BatchNorms that trained as plain averages over this
            many training batches (PreciseBN; see `taskprune.train.recompute_bn_stats`) after training and before
            every evaluation (training itself never reads them); 0 keeps the running averages training left.
            Short fine-tunes want it: the running averages mostly reflect the last ten batches.
        seed: shuffling seed for a Dataset.
        progress: show a rich progress bar with the per-task losses (rank 0 only).

    Example:
        >>> config = FinetuneConfig(epochs=10, lr=5e-4, warmup_steps=100)
        >>> FinetuneConfig.from_dict(config.to_dict()) == config
        True
    """

    epochs: int = 1
    max_steps: int | None = None
    optimizer: str = "adamw"
    lr: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    grad_clip: float | None = 10.0
    batch_size: int = 16
    eval_every: int | None = None
    best_key: str | None = None
    best_mode: str = "max"
    keep_best: bool | None = None
    judge_start: bool = True
    bn_mode: str = "frozen"
    bn_batches: int = 0
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {self.optimizer!r}; available: {', '.join(OPTIMIZERS)}")
        if self.best_mode not in ("max", "min"):
            raise ValueError(f"best_mode must be 'max' or 'min', got {self.best_mode!r}")
        if self.keep_best is not None and not isinstance(self.keep_best, bool):
            raise ValueError(f"keep_best must be None, True or False, got {self.keep_best!r}")
        if not isinstance(self.judge_start, bool):
            raise ValueError(f"judge_start must be True or False, got {self.judge_start!r}")
        if self.bn_mode not in BN_MODES:
            raise ValueError(f"Unknown bn_mode {self.bn_mode!r}; available: {', '.join(BN_MODES)}")
        for name, minimum in (("epochs", 1), ("warmup_steps", 0), ("eval_every", 1), ("max_steps", 1),
                              ("batch_size", 1), ("bn_batches", 0), ("seed", 0)):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name, strict in (("lr", True), ("weight_decay", False), ("grad_clip", True)):
            number = getattr(self, name)
            if number is not None and not (isinstance(number, (int, float)) and math.isfinite(number)
                                           and (number > 0 or (number == 0 and not strict))):
                raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} 0, got {number!r}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; `FinetuneConfig.from_dict(c.to_dict()) == c`."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneConfig:
        """Rebuild from `to_dict()` output. Unknown keys raise ValueError listing the valid ones."""
        return cls(**known_fields(cls, data))


def cosine_factor(progress: float, floor: float = 0.0) -> float:
    """From 1 at progress 0 down to `floor` at progress 1 along half a cosine."""
    return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def cosine_lr(step: int, total_steps: int, warmup_steps: int = 0, floor: float = 0.0) -> float:
    """Learning-rate factor for 0-based `step`: a linear warmup to 1 over `warmup_steps` (from `floor`), then
    `cosine_factor` of the progress through the remaining steps. With floor 0 the warmup factor is
    (step + 1) / warmup_steps and the decay is 0.5 * (1 + cos(pi * (step - warmup) / (total - warmup)))."""
    if step < warmup_steps:
        return floor + (1 - floor) * (step + 1) / warmup_steps
    return cosine_factor((step - warmup_steps) / max(1, total_steps - warmup_steps), floor)


def cosine_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0,
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler applying `cosine_lr` to every parameter group's initial learning rate; step it once per step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_lr(step, total_steps, warmup_steps))
