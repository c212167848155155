"""`prune` for Ultralytics models: every head output protected, the loss parts as tasks, the result still a YOLO."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...prune import PruneResult
from ...prune import prune as prune_model
from .data import loader
from .outputs import HeadOutputs, network
from .tasks import YoloTasks, hyperparameters

__all__ = ["YoloPruneResult", "prune"]

_PREFIX = "model."  # HeadOutputs holds the Ultralytics network as its submodule `model`


@dataclass
class YoloPruneResult:
    """What `prune` returns for an Ultralytics model.

    Attributes:
        yolo: a new `ultralytics.YOLO` around the pruned network (None when a bare network was pruned): predict,
            val, train (through `taskprune.integrations.ultralytics.train`), export and save work as usual.
        model: the pruned network (a `DetectionModel` or subclass, of the same class as the original).
        channel_map: kept channel indices per layer, named as in the Ultralytics network ("model.10.conv").
        result: taskprune's `PruneResult` of the wrapped network (its report names layers "model.model.10.conv").
    """

    yolo: Any
    model: nn.Module
    channel_map: dict[str, list[int]]
    result: PruneResult

    @property
    def report(self) -> Any:
        """The `PruneReport` (print it for a table)."""
        return self.result.report


def prune(model: Any, *, ratio: float, imgsz: int = 640, data: str | Path | Iterable[Any] | None = None,
          importance: Any = "magnitude", parts: tuple[str, ...] | None = None, batch: int = 8,
          num_batches: int = 16, protect: Sequence[str] = (), hyp: dict[str, Any] | None = None,
          **options: Any) -> YoloPruneResult:
    """Prune an Ultralytics YOLO (detection, segmentation, pose or oriented boxes) by `ratio` of `target`.

    The head's prediction layers, its prototype layer and its distribution-focal decoding are never narrowed; the
    neck and backbone are pruned like any network. With a gradient criterion ("taylor", "task_taylor",
    "conflict_taylor") the tasks are the parts of Ultralytics' own loss on batches of Ultralytics' dataloader.

    Args:
        model: an `ultralytics.YOLO` or its `.model`; never modified.
        ratio: fraction of `target` (a keyword of `options`, default "params") to remove.
        imgsz: the square image size the example input and the scoring batches use.
        data: a dataset YAML (its train split, with Ultralytics' training augmentations) or an iterable of
            Ultralytics batches; needed by gradient criteria.
        importance: as in `taskprune.prune`.
        parts: the loss parts to use as tasks (default: all of the model's criterion: box, cls, dfl, ...).
        batch: images per scoring batch when `data` is a YAML.
        num_batches: scoring batches read.
        protect: fnmatch patterns of layers, named as in the Ultralytics network ("model.22.*"), never pruned.
        hyp: Ultralytics training settings overriding the defaults (loss gains, augmentation).
        **options: any other keyword of `taskprune.prune` (target, round_to, max_layer_ratio, latency_table, ...).

    Returns:
        YoloPruneResult with the pruned YOLO, network, channel map and taskprune's result.

    Example:
        >>> pruned = prune(YOLO("yolo11n-seg.yaml"), ratio=0.3, imgsz=640, data="scenes.yaml",
        ...                importance="task_taylor")
        >>> pruned.yolo.val(data="scenes.yaml")
    """
    if "inplace" in options or "tasks" in options:
        raise TypeError("prune() sets tasks= and works on a copy; inplace= and tasks= are not options here")
    net = network(model)
    settings = hyperparameters(net, {"imgsz": imgsz, **(hyp or {})})
    work = HeadOutputs(copy.deepcopy(net))
    for name, parameter in work.named_parameters():
        parameter.requires_grad_(".dfl." not in name)  # DFL is a fixed decoding, never trained
    tasks = YoloTasks(work.model, settings, parts)
    batches = loader(work.model, data, imgsz=imgsz, batch=batch, hyp=settings) \
        if isinstance(data, (str, Path)) else data
    device = next(net.parameters()).device
    example = torch.zeros(1, 3, imgsz, imgsz, device=device)
    result = prune_model(work, example, ratio=ratio, importance=importance, tasks=tasks, data=batches,
                         num_batches=num_batches, protect=tuple(_PREFIX + p for p in protect), inplace=True,
                         **options)
    pruned = work.model
    channel_map = {name.removeprefix(_PREFIX): kept for name, kept in result.channel_map.items()}
    yolo = with_network(model, pruned) if net is not model else None
    return YoloPruneResult(yolo=yolo, model=pruned, channel_map=channel_map, result=result)


def with_network(yolo: Any, net: nn.Module) -> Any:
    """A copy of the `ultralytics.YOLO` `yolo` holding `net` instead of its network (nothing else shared)."""
    # a cached predictor holds the old network, and a trainer its dataloaders: neither is copied
    memo: dict[int, Any] = {id(yolo.model): net, id(yolo.predictor): None, id(yolo.trainer): None}
    return copy.deepcopy(yolo, memo)
