"""Recovery with Ultralytics' own trainer, keeping the pruned network, optionally with feature distillation.

Ultralytics' `YOLO.train` builds its network from the model YAML (`trainer.get_model`), loading whatever weights
fit: a pruned network would silently become the unpruned architecture again. `train` hands the trainer a subclass
of the task's own trainer whose `get_model` returns the pruned network itself, so everything else (data,
augmentation, loss, EMA, validation, checkpoints, `YOLO(best.pt)`) is Ultralytics' as usual.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ...distill import Distill, FeatureDistiller
from .outputs import HeadOutputs, YoloNet, network, with_feature_shapes

__all__ = ["architecture", "keeping_trainer", "train"]

_PREFIX = "model."  # FeatureDistiller sees the networks through HeadOutputs


def architecture(net: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter's name and shape: two networks with the same list have the same architecture."""
    return [(name, tuple(p.shape)) for name, p in net.named_parameters()]


def train(yolo: Any, *, data: str, teacher: Any = None, distill: Distill | None = None,
          channel_map: Mapping[str, Sequence[int]] | None = None, **train_args: Any) -> Any:
    """Train a pruned `ultralytics.YOLO` with Ultralytics' trainer for its task, keeping its architecture.

    Args:
        yolo: the pruned `YOLO` (`prune(...).yolo`); afterwards it holds the best checkpoint, as after
            `YOLO.train`.
        data: the dataset YAML.
        teacher: the unpruned model (a `YOLO` or its `.model`); turns on taskprune's feature distillation.
        distill: the `taskprune.Distill` config (default `Distill()`, the shared trunk's outputs, MSE). Its `alpha`
            weighs the feature loss per image against the sum of Ultralytics' loss parts; it is logged as kd_loss.
        channel_map: `prune(...).channel_map`, aligning the student's channels with the teacher's.
        **train_args: any argument of `YOLO.train` (epochs, imgsz, batch, plots, ...).

    Returns:
        The validation metrics Ultralytics returns.

    Raises:
        TypeError: `yolo` is not an `ultralytics.YOLO`.
        ValueError: distill or channel_map without a teacher; a network whose head predicts another number of
            classes than the dataset names.
        RuntimeError: the trained checkpoint does not have the pruned architecture.
    """
    from ultralytics.engine.model import Model

    if not isinstance(yolo, Model):
        raise TypeError(f"train() needs an ultralytics YOLO (prune(...).yolo), got {type(yolo).__name__}")
    if teacher is None and (distill is not None or channel_map is not None):
        raise ValueError("distill= and channel_map= need teacher= (the unpruned model to distil from)")
    if "trainer" in train_args:
        raise TypeError("train() chooses the trainer (the task's own, keeping the pruned network)")
    student = network(yolo)
    shape = architecture(student)
    base = yolo.task_map[yolo.task]["trainer"]
    trainer = keeping_trainer(base, student, None if teacher is None else network(teacher), distill, channel_map)
    metrics = yolo.train(data=data, trainer=trainer, **train_args)
    if architecture(network(yolo)) != shape:
        raise RuntimeError("Ultralytics' trainer returned a network with another architecture than the pruned "
                           "one; please report this with your Ultralytics version")
    return metrics


def keeping_trainer(base: type, student: YoloNet, teacher: YoloNet | None = None,
                    distill: Distill | None = None, channel_map: Mapping[str, Sequence[int]] | None = None
                    ) -> type:
    """A subclass of the Ultralytics trainer `base` that trains `student` itself instead of a network built from
    the model YAML, with distillation from `teacher` when one is given."""

    class PrunedTrainer(base):  # type: ignore[misc, valid-type]
        callbacks: dict[str, list[Any]]

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # the trainer shares the YOLO's callback lists: copy them so that ours leave the YOLO as it was
            self.callbacks = {event: list(functions) for event, functions in self.callbacks.items()}
            if teacher is not None:
                distillation = _Distillation(teacher, student, distill, channel_map)
                self.add_callback("on_train_start", distillation.attach)
                self.add_callback("on_train_end", distillation.detach)

        def get_model(self, cfg: Any = None, weights: Any = None, verbose: bool = True) -> nn.Module:
            classes = student.model[-1].nc
            if classes != self.data["nc"]:
                raise ValueError(f"the pruned network predicts {classes} classes and the dataset names "
                                 f"{self.data['nc']}; prune a network trained (or built) for this dataset")
            return student

    PrunedTrainer.__name__ = PrunedTrainer.__qualname__ = f"Pruned{base.__name__}"
    return PrunedTrainer


class _Distillation:
    """Puts a distilling criterion on the student once the trainer has built its EMA copy (so that neither the
    EMA nor any checkpoint carries the teacher or a hook), and takes it off when training ends."""

    def __init__(self, teacher: YoloNet, student: YoloNet, distill: Distill | None,
                 channel_map: Mapping[str, Sequence[int]] | None) -> None:
        self.teacher, self.student, self.distill = teacher, student, distill
        self.channel_map = {_PREFIX + k: list(v) for k, v in (channel_map or {}).items()}
        self.distiller: FeatureDistiller | None = None

    def attach(self, trainer: Any) -> None:
        # a copy: the caller's teacher stays where it was, and a checkpoint's frozen parameters need gradients
        # for the dependency tracing that finds the distillation layers (the teacher itself runs under no_grad)
        teacher = copy.deepcopy(self.teacher).to(trainer.device).eval().requires_grad_(True)
        images = torch.zeros(1, 3, trainer.args.imgsz, trainer.args.imgsz, device=trainer.device)
        self.distiller = FeatureDistiller(HeadOutputs(teacher), HeadOutputs(self.student), self.distill,
                                          self.channel_map, example_inputs=images)
        strides = self.student.model[-1].stride.detach().cpu()
        self.student.criterion = _DistillingCriterion(self.student.init_criterion(), self.distiller, strides)

    def detach(self, trainer: Any) -> None:
        if self.distiller is not None:
            self.distiller.remove()
        self.student.criterion = None


class _DistillingCriterion:
    """Ultralytics' criterion plus the feature loss. The distiller runs teacher and student on the trainer's
    images, and the task loss is computed on that student forward: Ultralytics' loop offers no way in between its
    own forward and its criterion, so the student runs once more per step (no extra backward)."""

    def __init__(self, base: Any, distiller: FeatureDistiller, strides: torch.Tensor) -> None:
        self.base, self.distiller, self.strides = base, distiller, strides

    def __call__(self, preds: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["img"]
        kd, maps = self.distiller(images)
        loss, items = self.base(with_feature_shapes(maps, images, self.strides), batch)
        kd = kd * images.shape[0]  # Ultralytics' loss parts are per-image means times the batch size
        return torch.cat([loss, kd.reshape(1).to(loss.dtype)]), {**items, "kd_loss": kd.detach()}

    def update(self) -> None:
        """End-to-end heads shift their branch weights once per epoch."""
        if callable(getattr(self.base, "update", None)):
            self.base.update()
