"""Feature distillation losses, and the channel alignment between a pruned student and its teacher.

Every loss takes two tensors of the same shape `[N, C, *spatial]` (the student's, already aligned to the teacher's
channels, and the teacher's), computes in float32 and returns a scalar that is exactly zero when they are equal.

- `mse`: mean squared error (FitNets, Romero et al. 2015).
- `pkd`: per-channel standardisation over batch and space, then MSE / 2, which is the mean over channels of
  1 - Pearson correlation (Cao et al. 2022).
- `cwd`: channel-wise distillation: a softmax over the spatial positions of every channel at temperature tau,
  KL(teacher || student) summed over positions, averaged over batch and channels, scaled by tau^2 (Shu et al. 2021).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FEATURE_LOSSES", "check_alignment", "check_channel_map", "close_matches", "cwd_loss", "feature_loss",
           "mse_loss", "pkd_loss", "selection_adapter"]

_EPS = 1e-6


def mse_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Mean squared error over every element. `tau` is ignored."""
    return F.mse_loss(student.float(), teacher.float())


def _standardise(feature: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit (population) variance per channel, over batch and spatial positions."""
    per_channel = feature.float().transpose(0, 1).reshape(feature.shape[1], -1)
    mean = per_channel.mean(dim=1, keepdim=True)
    std = per_channel.std(dim=1, unbiased=False, keepdim=True)
    return (per_channel - mean) / (std + _EPS)


def pkd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Mean over channels of 1 - Pearson(student channel, teacher channel). `tau` is ignored."""
    return F.mse_loss(_standardise(student), _standardise(teacher)) / 2


def cwd_loss(student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """Channel-wise spatial-softmax KL(teacher || student) at temperature `tau`, times tau^2.

    Raises:
        ValueError: the features have no spatial dimensions (a softmax over one position carries no signal).
    """
    if student.dim() < 3:
        raise ValueError(
            f"loss='cwd' needs feature maps with spatial dimensions [N, C, H, W], got shape {tuple(student.shape)}; "
            "use loss='mse' or 'pkd' for vector features"
        )
    batch, channels = student.shape[:2]
    log_student = F.log_softmax(student.float().reshape(batch * channels, -1) / tau, dim=1)
    log_teacher = F.log_softmax(teacher.float().reshape(batch * channels, -1) / tau, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="sum", log_target=True)
    return kl * tau**2 / (batch * channels)


FEATURE_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "mse": mse_loss,
    "pkd": pkd_loss,
    "cwd": cwd_loss,
}


def feature_loss(name: str, student: torch.Tensor, teacher: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """The loss `name` ("mse", "pkd" or "cwd") between two feature maps of the same shape.

    Raises:
        ValueError: unknown loss name (the message lists the valid ones).
    """
    if name not in FEATURE_LOSSES:
        raise ValueError(f"Unknown distillation loss {name!r}; available: {', '.join(sorted(FEATURE_LOSSES))}")
    return FEATURE_LOSSES[name](student, teacher, tau)


def check_channel_map(channel_map: Mapping[str, Sequence[int]] | None) -> dict[str, torch.Tensor]:
    """`PruneResult.channel_map` as index tensors, checked: each entry non-empty, non-negative, strictly ascending.

    Raises:
        TypeError: not a mapping.
        ValueError: an entry that is not a valid list of kept indices (the error names the module).
    """
    if channel_map is None:
        return {}
    if not isinstance(channel_map, Mapping):
        raise TypeError(f"channel_map must map module names to kept channel indices, got {type(channel_map).__name__}")
    checked = {}
    for name, kept in channel_map.items():
        indices = torch.as_tensor(list(kept), dtype=torch.long)
        if indices.dim() != 1 or indices.numel() == 0 or indices.min() < 0 or (indices.diff() <= 0).any():
            raise ValueError(f"channel_map[{name!r}] must be non-empty, non-negative, sorted ascending and unique")
        checked[name] = indices
    return checked


def selection_adapter(kept: torch.Tensor | None, student_channels: int, teacher_channels: int) -> nn.Conv2d:
    """A 1x1 conv from the student's channels to all of the teacher's that starts as the channel selection:
    output channel `kept[i]` copies student channel i, every other output (a pruned teacher channel) starts at 0.
    `kept=None` means the identity."""
    kept = torch.arange(student_channels) if kept is None else kept.cpu()
    adapter = nn.Conv2d(student_channels, teacher_channels, kernel_size=1)
    with torch.no_grad():
        adapter.weight.zero_()
        adapter.bias.zero_()  # type: ignore[union-attr]
        adapter.weight[kept, torch.arange(student_channels), 0, 0] = 1.0
    return adapter


def close_matches(name: str, names: Sequence[str]) -> str:
    """"; did you mean 'a', 'b'?" for the names closest to `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def check_alignment(name: str, student: torch.Size, teacher: torch.Size, selection: Mapping[str, torch.Tensor],
                    ) -> None:
    """Check that layer `name`'s student feature shape fits the teacher's under the channel map: the same batch
    and spatial sizes, and one kept teacher channel per student channel (all of them when `name` has no entry).

    Raises:
        ValueError: naming the layer, both shapes and the map entry.
    """
    kept = selection.get(name)
    fits = len(student) == len(teacher) >= 2 and student[0] == teacher[0] and student[2:] == teacher[2:]
    if kept is None:
        fits = fits and student[1] == teacher[1]
        how = "channel_map has no entry for it (identity)" + close_matches(name, list(selection))
    else:
        fits = fits and len(kept) == student[1] and int(kept[-1]) < teacher[1]
        how = f"channel_map[{name!r}] keeps {len(kept)} channels, the largest index {int(kept[-1])}"
    if not fits:
        raise ValueError(f"layer {name!r}: student feature shape {tuple(student)} does not fit teacher feature "
                         f"shape {tuple(teacher)}; {how}")
