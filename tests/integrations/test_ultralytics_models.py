"""Every model of the goal, built from Ultralytics' YAML: pruned with every head output protected, then predicted,
saved and reloaded through `YOLO(path)`, trained a few iterations with Ultralytics' trainer, validated, exported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from yolo_fixtures import IMGSZ, MODELS, build, train_settings

from taskprune.tasks import flatten_outputs

pytestmark = [pytest.mark.ultralytics, pytest.mark.slow]


def head_outputs(net: torch.nn.Module) -> dict[str, int]:
    """Output channels of the head's prediction convolutions, prototype output and DFL decoding."""
    head = net.model[-1]
    found = {}
    for name, module in head.named_modules():
        last_of_branch = name.count(".") == 2 and name.split(".")[0] in (
            "cv2", "cv3", "cv4", "one2one_cv2", "one2one_cv3", "one2one_cv4") and name.endswith(".2")
        if last_of_branch or name in ("proto.cv3.conv", "dfl.conv"):
            found[name] = module.out_channels if isinstance(module, torch.nn.Conv2d) else module.conv.out_channels
    return found


@pytest.mark.parametrize("name", list(MODELS))
def test_prune_train_validate_export(tpu: Any, name: str, datasets: dict[str, Path],
                                     tmp_path: Path) -> None:
    data = datasets[MODELS[name]]
    dense = build(name, data)
    before = {k: v.clone() for k, v in dense.model.state_dict().items()}
    outputs_before = head_outputs(dense.model)

    pruned = tpu.prune(dense, ratio=0.3, imgsz=IMGSZ, progress=False)

    assert abs(pruned.report.reached - 0.3) <= 0.01
    assert head_outputs(pruned.model) == outputs_before  # every prediction, prototype and DFL channel kept
    narrowed = {name for name in pruned.channel_map if not name.startswith(f"model.{len(dense.model.model) - 1}.")}
    assert narrowed, "nothing outside the head was pruned"
    assert all(torch.equal(before[k], v) for k, v in dense.model.state_dict().items())  # the caller's model
    images = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad():
        shapes = [t.shape for t in flatten_outputs(tpu.HeadOutputs(dense.model.eval())(images))]
        pruned_shapes = [t.shape for t in flatten_outputs(tpu.HeadOutputs(pruned.model.eval())(images))]
    assert len(shapes) >= 2 and pruned_shapes == shapes  # boxes and scores at least

    path = tmp_path / "pruned.pt"
    pruned.yolo.save(path)
    from ultralytics import YOLO

    reloaded = YOLO(str(path))
    assert sum(p.numel() for p in reloaded.model.parameters()) == sum(p.numel() for p in pruned.model.parameters())
    results = reloaded.predict(str(next((Path(data).parent / "images" / "val").iterdir())), imgsz=IMGSZ,
                               verbose=False)
    assert len(results) == 1

    shape = [tuple(p.shape) for p in reloaded.model.parameters()]
    tpu.train(reloaded, data=str(data), **train_settings(tmp_path, fraction=0.5))
    assert [tuple(p.shape) for p in reloaded.model.parameters()] == shape  # the trainer kept the pruned network
    metrics = reloaded.val(data=str(data), imgsz=IMGSZ, batch=4, workers=0, plots=False, device="cpu",
                           project=str(tmp_path), name="val", verbose=False)
    assert 0.0 <= metrics.box.map50 <= 1.0

    onnx_file = Path(reloaded.export(format="onnx", imgsz=IMGSZ, simplify=False))
    assert onnx_file.exists() and onnx_file.stat().st_size > 0
