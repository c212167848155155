"""Published pretrained driving networks and real BDD100K frames, loaded from ../shared/real (outside the package).

Four networks (two TwinLiteNet variants, TwinLiteNet+ nano and small) output (drivable logits, lane logits), each
[B, 2, H, W]. The frames have no labels, so the reference is the dense network's own masks: agreement is the IoU of
the pruned network's foreground with the dense one's, per output. The seven frames are split by position: four
score channels and train (random crops and flips), one judges the recovery, two are only reported.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from taskprune import Tasks

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "real"
TASK_NAMES = ("drivable", "lane")
SPLIT = {"train": (0, 1, 2, 3), "val": (4,), "test": (5, 6)}
WORSE = 0.05  # points of agreement a recovery must lose to count as ending below its start

__all__ = ["NETWORKS", "REAL", "SPLIT", "TASK_NAMES", "WORSE", "Network", "agreement", "available", "crops",
           "frames", "judging", "load_network", "masks", "real_tasks", "split", "whole_frames"]


@dataclass(frozen=True)
class Network:
    """Where a network's code and weights are and the input size (height, width) its authors use."""

    folder: str
    weights: str
    size: tuple[int, int]
    config: str | None = None  # TwinLiteNet+ size


NETWORKS = {
    "twinlitenet_se": Network("twinlitenet_se", "best_model.pth", (360, 640)),
    "twinlitenet_attn": Network("twinlitenet_attn", "model_99.pth", (360, 640)),
    "twinlitenetplus_nano": Network("twinlitenetplus", "nano.pth", (384, 640), "nano"),
    "twinlitenetplus_small": Network("twinlitenetplus", "small.pth", (384, 640), "small"),
}


def available() -> bool:
    """Whether ../shared/real holds the frames and every network's weights."""
    return (REAL / "frames").is_dir() and all((REAL / n.folder / n.weights).exists() for n in NETWORKS.values())


def _module_from(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_network(name: str) -> nn.Module:
    """The pretrained network `name` (a key of NETWORKS) in eval mode, its weights loaded strictly."""
    if name not in NETWORKS:
        raise ValueError(f"Unknown network {name!r}; available: {', '.join(NETWORKS)}")
    spec = NETWORKS[name]
    folder = REAL / spec.folder
    if spec.config is None:
        model = _module_from(folder / "TwinLite.py", f"real_{spec.folder}").TwinLiteNet()
    else:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))  # its model.py imports `from model import config`
        from model.model import TwinLiteNetPlus  # type: ignore[import-not-found]

        model = TwinLiteNetPlus(config=spec.config)
    state = torch.load(folder / spec.weights, map_location="cpu", weights_only=True)
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()}, strict=True)
    return model.eval()


def frames(size: tuple[int, int]) -> torch.Tensor:
    """The seven frames as float RGB / 255, [7, 3, height, width], resized bilinearly as the authors' cv2 does."""
    paths = sorted((REAL / "frames").glob("*.jpg"))
    images = [np.asarray(Image.open(p).convert("RGB").resize((size[1], size[0]), Image.BILINEAR)) for p in paths]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


@torch.no_grad()
def masks(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{task: argmax mask [N, H, W]} of `model` on `images`, one frame at a time."""
    outs = [model(image[None]) for image in images]
    return {task: torch.cat([o[i].argmax(1) for o in outs]) for i, task in enumerate(TASK_NAMES)}


def agreement(model: nn.Module, images: torch.Tensor, reference: dict[str, torch.Tensor]) -> dict[str, float]:
    """{task: IoU in % of the foreground of `model`'s masks with `reference`'s}, pooled over the frames."""
    with torch.no_grad():
        found = masks(model, images)
    result = {}
    for task in TASK_NAMES:
        a, b = found[task] == 1, reference[task] == 1
        union = int((a | b).sum())
        result[task] = 100.0 * int((a & b).sum()) / union if union else 100.0
    return result


def whole_frames(images: torch.Tensor, labels: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """One batch of the frames and their mirror images, with the masks: what judges a recovery (crops of one frame
    misjudge it: real_recovery_judge-crops.md)."""
    mirrored = {t: torch.cat([m, m.flip(-1)]) for t, m in labels.items()}
    return [{"image": torch.cat([images, images.flip(-1)]), **mirrored}]


def split(images: torch.Tensor, dense: dict[str, torch.Tensor]
          ) -> dict[str, tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The frames and their dense masks by SPLIT: {"train" | "val" | "test": (images, {task: masks})}."""
    return {k: (images[list(v)], {t: m[list(v)] for t, m in dense.items()}) for k, v in SPLIT.items()}


def judging(images: torch.Tensor, labels: dict[str, torch.Tensor], judge: str, batch_size: int,
            crop: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """What judges a recovery: the frames and their mirrors (`judge="frames"`) or two batches of crops of them."""
    return whole_frames(images, labels) if judge == "frames" else crops(images, labels, 2, batch_size, crop, seed=1)


def crops(images: torch.Tensor, labels: dict[str, torch.Tensor], count: int, batch_size: int,
          crop: tuple[int, int], seed: int) -> list[dict[str, torch.Tensor]]:
    """`count` batches of random `crop`s (height, width), each flipped left-right at random, with the masks."""
    generator = torch.Generator().manual_seed(seed)
    height, width = images.shape[-2:]
    batches = []
    for _ in range(count):
        items: dict[str, list[torch.Tensor]] = {"image": [], **{t: [] for t in TASK_NAMES}}
        for _ in range(batch_size):
            n = int(torch.randint(len(images), (1,), generator=generator))
            y = int(torch.randint(height - crop[0] + 1, (1,), generator=generator))
            x = int(torch.randint(width - crop[1] + 1, (1,), generator=generator))
            flip = bool(torch.rand((), generator=generator) < 0.5)
            window = (slice(y, y + crop[0]), slice(x, x + crop[1]))
            for key, tensor in (("image", images[n][:, window[0], window[1]]),
                                *((t, labels[t][n][window]) for t in TASK_NAMES)):
                items[key].append(tensor.flip(-1) if flip else tensor)
        batches.append({k: torch.stack(v) for k, v in items.items()})
    return batches


def real_tasks() -> Tasks:
    """Both outputs as tasks, each trained with cross-entropy against the dense network's masks."""
    return Tasks(outputs={t: (lambda out, i=i: out[i]) for i, t in enumerate(TASK_NAMES)},
                 losses={t: (lambda out, batch, t=t: F.cross_entropy(out, batch[t])) for t in TASK_NAMES},
                 inputs=lambda batch: batch["image"])
