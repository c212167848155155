"""Ultralytics' own loss, split into its parts, as the tasks of task-aware pruning.

Each part of the loss an Ultralytics criterion returns (box, cls, dfl; seg for segmentation; pose and kobj for
pose; angle for oriented boxes) is one task. A part's output is the head map its gradient flows through (box and
dfl: the box distribution; cls: the class scores; seg: mask coefficients and prototypes; pose and kobj: the
keypoints; angle: the angles), so `prune` knows which channels serve which part. The criterion runs once per
forward and batch, whatever the number of parts.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch

from .outputs import TaskView, YoloNet, network, with_feature_shapes

__all__ = ["PART_OUTPUTS", "YoloTasks", "hyperparameters", "yolo_tasks"]

# Loss part -> the raw head maps its gradient reaches.
PART_OUTPUTS: dict[str, tuple[str, ...]] = {
    "box": ("boxes",), "dfl": ("boxes",), "cls": ("scores",), "seg": ("mask_coefficient", "proto"),
    "pose": ("kpts",), "kobj": ("kpts",), "angle": ("angle",),
}


def hyperparameters(model: YoloNet, overrides: Mapping[str, Any] | None = None) -> Any:
    """Ultralytics' default training settings, updated with the model's own `args`, its task and `overrides`:
    what its losses and dataloader read (box, cls and dfl gains, overlap_mask, augmentation, ...)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import guess_model_task

    args = getattr(model, "args", None)
    own = dict(args) if isinstance(args, Mapping) else dict(vars(args)) if hasattr(args, "__dict__") else {}
    allowed = set(vars(get_cfg()))
    own = {k: v for k, v in own.items() if k in allowed}
    return get_cfg(overrides={**own, "task": guess_model_task(model), **dict(overrides or {})})


@contextlib.contextmanager
def _args(model: YoloNet, hyp: Any) -> Iterator[None]:
    """`model.args` set to `hyp` for as long as the block lasts (Ultralytics' criteria read it when built)."""
    had, old = hasattr(model, "args"), getattr(model, "args", None)
    model.args = hyp
    try:
        yield
    finally:
        if had:
            model.args = old
        else:
            del model.args


class YoloTasks:
    """The `MultiTaskAdapter` of an Ultralytics model wrapped in `HeadOutputs`: one task per loss part.

    Batches are Ultralytics' own (dicts with "img" as uint8 and the labels); the model input is the image scaled
    to [0, 1] on `device`, as Ultralytics' trainer prepares it.

    Args:
        model: the Ultralytics model (its head and strides define the criterion; pruning does not change them).
        hyp: training settings from `hyperparameters` (default: Ultralytics' defaults and the model's args).
        parts: the loss parts to keep as tasks (default: every part the model's criterion computes).
    """

    def __init__(self, model: YoloNet, hyp: Any = None, parts: tuple[str, ...] | None = None) -> None:
        hyp = hyperparameters(model) if hyp is None else hyp
        with _args(model, hyp):
            self.criterion = model.init_criterion()
        single = getattr(self.criterion, "one2one", self.criterion)  # end-to-end heads: both branches, one naming
        all_parts = tuple(name.removesuffix("_loss") for name in single.loss_names)
        known = [p for p in all_parts if p in PART_OUTPUTS]
        chosen = tuple(known) if parts is None else tuple(parts)
        unknown = sorted(set(chosen) - set(known))
        if unknown:
            raise ValueError(f"unknown loss part(s) {unknown}; this model's parts are: {', '.join(known)}")
        self._index = {p: all_parts.index(p) for p in chosen}
        self.strides = model.model[-1].stride.detach().cpu()
        self.device = next(model.parameters()).device
        self._last: tuple[Any, Any, torch.Tensor] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._index)

    def task_output(self, name: str, model_output: Any) -> TaskView:
        if name not in self._index:
            raise ValueError(f"unknown task {name!r}; tasks are: {', '.join(self._index)}")
        return TaskView(model_output, PART_OUTPUTS[name])

    def loss(self, name: str, task_output: Any, batch: Any) -> torch.Tensor:
        full = task_output.full if isinstance(task_output, TaskView) else task_output
        return self._parts(full, batch)[self._index[name]]

    def model_inputs(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return batch["img"].to(self.device, non_blocking=True).float() / 255

    def weight(self, name: str) -> float:
        return 1.0

    def _parts(self, preds: Mapping[str, Any], batch: Mapping[str, Any]) -> torch.Tensor:
        """The criterion's loss vector (each part times the batch size, as Ultralytics trains), computed once per
        prediction and batch; the references kept make the identity check safe."""
        if self._last is not None and self._last[0] is preds and self._last[1] is batch:
            return self._last[2]
        images = batch["img"]
        labels = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        parts = self.criterion(with_feature_shapes(preds, images, self.strides), labels)[0]
        self._last = (preds, batch, parts)
        return parts


def yolo_tasks(model: Any, hyp: Any = None, parts: tuple[str, ...] | None = None) -> YoloTasks:
    """The loss parts of an Ultralytics model (a `YOLO` or its `.model`) as tasks; see `YoloTasks`."""
    return YoloTasks(network(model), hyp, parts)
