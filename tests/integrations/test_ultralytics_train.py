"""Recovery with Ultralytics' own trainer: the pruned network is the one trained, saved and reloaded, the loss falls,
and distillation from the unpruned model adds its term without leaking into the checkpoint or the caller's models.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
import torch
from yolo_fixtures import IMGSZ, build, train_settings

pytestmark = [pytest.mark.ultralytics, pytest.mark.slow]


def shapes(net: torch.nn.Module) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in net.parameters()]


def fit(tpu: Any, net: torch.nn.Module, data: Path) -> float:
    """Ultralytics' loss (all parts) of `net` on the training scenes as the validator sees them (no augmentation)."""
    tasks = tpu.yolo_tasks(net)
    batch = next(iter(tpu.loader(net, data, imgsz=IMGSZ, batch=8, augment=False)))
    with torch.no_grad():
        output = tpu.HeadOutputs(net.eval())(tasks.model_inputs(batch))
        return sum(float(tasks.loss(p, tasks.task_output(p, output), batch)) for p in tasks.names)


def losses(run: Path) -> list[dict[str, float]]:
    with open(run / "results.csv") as f:
        return [{k.strip(): float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def pruned(tpu: Any, datasets: dict[str, Path]) -> tuple[Any, Any]:
    dense = build("yolo11n-seg.yaml", datasets["segment"])
    return dense, tpu.prune(dense, ratio=0.3, imgsz=IMGSZ, progress=False)


def test_the_trainer_keeps_the_pruned_network_and_the_loss_falls(tpu: Any, pruned: tuple[Any, Any],
                                                                 datasets: dict[str, Path], tmp_path: Path) -> None:
    from ultralytics import YOLO

    dense, result = pruned
    student = tpu.with_network(result.yolo, result.model)
    kept = shapes(result.model)
    before = fit(tpu, result.model, datasets["segment"])
    tpu.train(student, data=str(datasets["segment"]), **train_settings(tmp_path, epochs=4, batch=8, lr0=0.002,
                                                                          warmup_epochs=0, mosaic=0.0))
    assert shapes(student.model) == kept
    assert shapes(YOLO(str(tmp_path / "run" / "weights" / "best.pt")).model) == kept
    assert len(losses(tmp_path / "run")) == 4
    after = fit(tpu, student.model.float(), datasets["segment"])
    assert after < before, (before, after)


def test_plain_ultralytics_training_would_rebuild_the_unpruned_network(pruned: tuple[Any, Any],
                                                                       datasets: dict[str, Path],
                                                                       tmp_path: Path) -> None:
    """The trap `train` exists for: YOLO.train builds its network from the model YAML."""
    dense, result = pruned
    result.yolo.train(data=str(datasets["segment"]), **train_settings(tmp_path, fraction=0.5))
    assert shapes(result.yolo.model) == shapes(dense.model) != shapes(result.model)


def test_distillation_adds_its_loss_and_leaves_no_trace(tpu: Any, pruned: tuple[Any, Any],
                                                        datasets: dict[str, Path], tmp_path: Path) -> None:
    from ultralytics import YOLO

    dense, result = pruned
    student = tpu.with_network(result.yolo, result.model)
    teacher_state = {k: v.clone() for k, v in dense.model.state_dict().items()}
    callbacks = {event: list(functions) for event, functions in student.callbacks.items()}
    tpu.train(student, data=str(datasets["segment"]), teacher=dense, channel_map=result.channel_map,
              **train_settings(tmp_path, fraction=0.5))
    rows = losses(tmp_path / "run")
    assert rows[0]["train/kd_loss"] > 0
    assert all(torch.equal(teacher_state[k], v) for k, v in dense.model.state_dict().items())
    assert student.callbacks == callbacks  # the trainer's callbacks stayed its own
    assert result.model.criterion is None and not any(m._forward_hooks for m in result.model.modules())
    reloaded = YOLO(str(tmp_path / "run" / "weights" / "best.pt"))
    assert shapes(reloaded.model) == shapes(result.model)
    assert not any(m._forward_hooks for m in reloaded.model.modules())


def test_a_network_for_other_classes_is_refused(tpu: Any, pruned: tuple[Any, Any], datasets: dict[str, Path],
                                                 tmp_path: Path) -> None:
    from ultralytics import YOLO

    other = YOLO("yolo11n-seg.yaml")  # 80 classes; the scenes name 2
    result = tpu.prune(other, ratio=0.3, imgsz=IMGSZ, progress=False)
    with pytest.raises(ValueError, match="predicts 80 classes and the dataset names 2"):
        tpu.train(result.yolo, data=str(datasets["segment"]), **train_settings(tmp_path))
