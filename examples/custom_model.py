"""Prune your own detector-plus-segmentation model: the whole path on a model defined here.

    python examples/custom_model.py              # about half a minute on a 2-core CPU
    python examples/custom_model.py --quick      # a few seconds (what CI runs)

The model is a small FPN detector with a segmentation head, standing in for yours. The steps are the ones you would
take with your own: describe the tasks, look at what the pruner sees, prune with a task-aware criterion, recover
with distillation from the unpruned model, keep the result, export it, and cut it down to the tasks a product needs.
The data is random (images and targets drawn from the unpruned model itself), so the numbers show the mechanics,
not accuracy: use your own loaders and losses.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import taskprune


def conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.SiLU())


class DetSegNet(nn.Module):
    """A backbone of three stages, a top-down FPN, a detection head per scale and a segmentation head."""

    def __init__(self, classes: int = 3, anchors: int = 3, width: int = 32) -> None:
        super().__init__()
        self.stem = conv(3, width, 2)
        self.c3, self.c4, self.c5 = conv(width, width, 2), conv(width, 2 * width, 2), conv(2 * width, 4 * width, 2)
        self.lateral5, self.lateral4 = nn.Conv2d(4 * width, width, 1), nn.Conv2d(2 * width, width, 1)
        self.smooth4, self.smooth3 = conv(width, width), conv(width, width)
        self.det = nn.ModuleList(nn.Conv2d(width, anchors * (5 + classes), 1) for _ in range(2))
        self.seg = nn.Sequential(conv(width, width), nn.Conv2d(width, classes, 1))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        c3 = self.c3(self.stem(images))
        c4 = self.c4(c3)
        p5 = self.lateral5(self.c5(c4))
        p4 = self.smooth4(self.lateral4(c4) + F.interpolate(p5, scale_factor=2.0))
        p3 = self.smooth3(c3 + F.interpolate(p4, scale_factor=2.0))
        masks = F.interpolate(self.seg(p3), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return {"boxes": [head(p) for head, p in zip(self.det, (p3, p4), strict=True)], "mask": masks}


def box_loss(maps: list[torch.Tensor], batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return sum(F.mse_loss(m, t) for m, t in zip(maps, (batch["boxes3"], batch["boxes4"]), strict=True))


def mask_loss(logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(logits, batch["mask"])


def batches(teacher: nn.Module, count: int, size: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Random images labelled by the unpruned model: a stand-in for your training loader."""
    generator = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(count):
        images = torch.randn(4, 3, size, size, generator=generator)
        with torch.no_grad():
            out = teacher(images)
        data.append({"image": images, "boxes3": out["boxes"][0], "boxes4": out["boxes"][1],
                     "mask": out["mask"].argmax(1)})
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller images and fewer steps")
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--out", type=Path, default=None, help="where to write the files (default: a temp dir)")
    args = parser.parse_args()
    torch.manual_seed(0)
    size, steps = (64, 5) if args.quick else (128, 60)
    model = DetSegNet().eval()
    example = torch.randn(1, 3, size, size)
    train = batches(model, 4 if args.quick else 16, size, seed=1)

    # 1. the tasks: how to pick each output, its loss, and what the model takes from a batch
    tasks = taskprune.Tasks(losses={"boxes": box_loss, "mask": mask_loss}, inputs=lambda batch: batch["image"])

    # 2. what the pruner sees: channel groups, which tasks each serves, the outputs it protects
    print(taskprune.inspect(model, example, tasks=tasks))

    # 3. prune with the task-aware criterion, then recover with distillation from the unpruned model
    result = taskprune.prune(model, example, ratio=args.ratio, importance="task_taylor", tasks=tasks,
                             data=train, num_batches=len(train))
    print(result.report)
    student = taskprune.finetune(result.model, tasks, train, epochs=100, max_steps=steps, teacher=model,
                                 channel_map=result.channel_map, progress=not args.quick)

    # 4. keep it, load it into a fresh instance, export it
    out = args.out or Path(tempfile.mkdtemp(prefix="taskprune-example-"))
    out.mkdir(parents=True, exist_ok=True)
    result.model = student
    taskprune.save(result, out / "detseg_pruned.pt")
    loaded = taskprune.load(out / "detseg_pruned.pt", DetSegNet()).eval()
    assert torch.equal(loaded(example)["mask"], student.eval()(example)["mask"])
    taskprune.export_onnx(loaded, example, out / "detseg_pruned.onnx", dynamic_batch=True)

    # 5. a product that needs only the masks: everything that served only detection goes
    masks_only = taskprune.extract(loaded, example, keep=["mask"], tasks=tasks)
    print(masks_only.report)
    print(f"files in {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")


if __name__ == "__main__":
    main()
