"""Teacher weights for DrivingNet: shipped in the package for size "s", trained and cached for other sizes.

The shipped teacher (`weights/driving_s.pt`, a plain state_dict) was trained on synthetic scenes at 192x320 by
`examples/driving/train_teacher.py` (docs/driving.md gives the command and its validation curve). A size without
shipped weights is trained on synthetic scenes for `train_minutes` the first time it is asked for and cached under
`$TASKPRUNE_CACHE` (default `~/.cache/taskprune`), so the next call loads it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .model import SIZES, DrivingNet

__all__ = ["WEIGHTS", "pretrained", "weights_path"]

WEIGHTS = Path(__file__).parent / "weights"
"""Where the shipped teacher weights live inside the installed package."""


def weights_path(size: str = "s") -> Path:
    """The file `pretrained(size)` loads: the shipped weights, else the cache entry (which may not exist yet)."""
    if size not in SIZES:
        raise ValueError(f"Unknown DrivingNet size {size!r}; available: {', '.join(SIZES)}")
    shipped = WEIGHTS / f"driving_{size}.pt"
    if shipped.exists():
        return shipped
    cache = Path(os.environ.get("TASKPRUNE_CACHE") or Path.home() / ".cache" / "taskprune")
    return cache / f"driving_{size}_synthetic_192x320.pt"


def pretrained(size: str = "s", *, train_minutes: float = 20.0, progress: bool = True) -> DrivingNet:
    """A DrivingNet teacher in eval mode: the shipped weights, or ones trained now on synthetic scenes and cached.

    Args:
        size: "n", "s" or "m"; "s" is shipped.
        train_minutes: wall-time budget for training a size that is neither shipped nor cached (192x320 scenes,
            one epoch over 8000 of them at most; the schedule anneals by the deadline).
        progress: show a progress bar while training.

    Example:
        >>> teacher = pretrained("s")
    """
    path = weights_path(size)
    model = DrivingNet(size=size)
    if not path.exists():
        _train_and_cache(model, path, train_minutes, progress)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()


def _train_and_cache(model: DrivingNet, path: Path, minutes: float, progress: bool) -> None:
    from .._runtime import atomic_write
    from .synthetic import SyntheticDriving
    from .train import TrainConfig, train

    print(f"no {path.name} yet: training a teacher on synthetic scenes for up to {minutes:g} minutes")
    torch.manual_seed(0)
    config = TrainConfig(epochs=1, batch_size=16, time_limit_minutes=minutes)
    train(model, SyntheticDriving(8000, size=(192, 320), seed=1), None, config, progress=progress)
    atomic_write(path, lambda partial: torch.save(model.state_dict(), partial))
