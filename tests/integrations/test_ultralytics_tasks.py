"""Ultralytics' loss parts as tasks, the generated dataset, the offline guard, and the errors users get."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.ultralytics

from yolo_fixtures import IMGSZ, build


@pytest.mark.parametrize(("name", "task", "parts"), [
    ("yolo11n-seg.yaml", "segment", ("box", "seg", "cls", "dfl")),
    ("yolo11n-pose.yaml", "pose", ("box", "pose", "kobj", "cls", "dfl")),
    ("yolo11n-obb.yaml", "obb", ("box", "cls", "dfl", "angle")),
    ("yolov10n.yaml", "detect", ("box", "cls", "dfl")),
])
def test_loss_parts_are_the_tasks(tpu: Any, name: str, task: str, parts: tuple[str, ...],
                                  datasets: dict[str, Path]) -> None:
    yolo = build(name, datasets[task])
    tasks = tpu.yolo_tasks(yolo)
    assert tasks.names == parts
    net = tpu.HeadOutputs(yolo.model).eval()
    batch = next(iter(tpu.loader(yolo.model, datasets[task], imgsz=IMGSZ, batch=4)))
    output = net(tasks.model_inputs(batch))
    losses = {p: tasks.loss(p, tasks.task_output(p, output), batch) for p in parts}
    assert all(loss.dim() == 0 and torch.isfinite(loss) and loss.requires_grad for loss in losses.values())


def test_a_part_reaches_only_its_own_head_maps(tpu: Any, datasets: dict[str, Path]) -> None:
    yolo = build("yolo11n-seg.yaml", datasets["segment"])
    tasks = tpu.yolo_tasks(yolo)
    batch = next(iter(tpu.loader(yolo.model, datasets["segment"], imgsz=IMGSZ, batch=4)))
    output = tpu.HeadOutputs(yolo.model).eval()(tasks.model_inputs(batch))
    maps = {k: v for k, v in output.items() if torch.is_tensor(v)}
    for part, own in (("cls", {"scores"}), ("box", {"boxes"}), ("seg", {"mask_coefficient", "proto"})):
        view = tasks.task_output(part, output)
        assert set(view) == own  # what prune attributes to the part
        grads = torch.autograd.grad(tasks.loss(part, view, batch), list(maps.values()), retain_graph=True,
                                    allow_unused=True)
        reached = {k for k, g in zip(maps, grads, strict=True) if g is not None and g.abs().sum() > 0}
        assert reached <= own, f"{part} reaches {reached}"


def test_task_aware_pruning_scores_with_the_loss_parts(tpu: Any, datasets: dict[str, Path]) -> None:
    yolo = build("yolo11n-seg.yaml", datasets["segment"])
    result = tpu.prune(yolo, ratio=0.3, imgsz=IMGSZ, data=datasets["segment"], importance="conflict_taylor",
                       batch=4, num_batches=2, progress=False)
    assert result.report.criterion == "conflict_taylor"
    assert abs(result.report.reached - 0.3) <= 0.01
    assert "gradients" in result.report.timings
    tasks_seen = {task for group in result.report.groups for task in group.tasks}
    assert tasks_seen == {"box", "seg", "cls", "dfl"}


def test_written_dataset_has_ultralytics_labels(tpu: Any, tmp_path: Path) -> None:
    data = tpu.write_driving_dataset(tmp_path, task="segment", train=3, val=2, test=2, size=(48, 64))
    text = data.read_text()
    assert "test: images/test" in text and "1: drivable" in text
    for split, count in (("train", 3), ("val", 2), ("test", 2)):
        labels = sorted((tmp_path / "labels" / split).glob("*.txt"))
        assert len(labels) == count == len(list((tmp_path / "images" / split).glob("*.png")))
    rows = [line.split() for f in (tmp_path / "labels" / "train").glob("*.txt") for line in f.read_text().splitlines()]
    assert {row[0] for row in rows} == {"0", "1"}  # vehicles and the drivable area
    for row in rows:
        coordinates = [float(v) for v in row[1:]]
        assert len(coordinates) % 2 == 0 and len(coordinates) >= 6
        assert all(0.0 <= v <= 1.0 for v in coordinates)
    with pytest.raises(ValueError, match="Unknown task 'seg'; available: detect, segment, pose, obb"):
        tpu.write_driving_dataset(tmp_path, task="seg")


def test_the_network_guard_catches_a_lookup(no_network: list[str]) -> None:
    with pytest.raises(OSError):
        socket.getaddrinfo("example.org", 443)
    assert no_network and no_network[0].startswith("lookup example.org")
    no_network.clear()  # caught on purpose


def test_bad_input_is_named(tpu: Any, datasets: dict[str, Path], tmp_path: Path) -> None:
    yolo = build("yolo11n-seg.yaml", datasets["segment"])
    with pytest.raises(TypeError, match="expected an ultralytics YOLO or its .model"):
        tpu.prune(torch.nn.Conv2d(3, 3, 1), ratio=0.3)
    with pytest.raises(ValueError, match=r"unknown loss part\(s\) \['mask'\]; this model's parts are: box, seg"):
        tpu.yolo_tasks(yolo, parts=("mask",))
    with pytest.raises(ValueError, match="distill= and channel_map= need teacher="):
        tpu.train(yolo, data=str(datasets["segment"]), channel_map={})
    with pytest.raises(TypeError, match="needs an ultralytics YOLO"):
        tpu.train(yolo.model, data=str(datasets["segment"]))
    with pytest.raises(ValueError, match="no split 'test'"):
        tpu.loader(yolo.model, datasets["segment"], imgsz=IMGSZ, split="test")


def test_latency_ratio_measures_both_models(tpu: Any, datasets: dict[str, Path]) -> None:
    yolo = build("yolo11n-seg.yaml", datasets["segment"])
    ratio = tpu.latency_ratio(yolo, yolo.model, imgsz=IMGSZ, repeats=3)
    assert ratio > 0 and torch.isfinite(torch.tensor(ratio))
