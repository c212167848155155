"""The alignment probe: which channel multiple the device runs fastest, from one convolution timed at many widths.

`device_alignment()` runs it once per machine, torch version and thread count and caches the answer.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import torch
from torch import nn

from .cache import FORMAT, cache_dir, device_key, digest, read_json, write_json
from .override import injected_alignment
from .timing import time_call

__all__ = ["device_alignment", "probe_alignment"]

_ALIGNMENTS: dict[str, int] = {}  # per-process cache of probe results, by device key


def probe_alignment(device: torch.device | str = "cpu", low: int = 16, high: int = 64,
                    size: int = 40) -> dict[str, Any]:
    """Time a 3x3 convolution (64 channels on the other side, `size`x`size` input) at the multiples of 8 from
    `low` to `high` and one and two channels past them, for output and input channels, and return
    {"alignment", "counts", "out_times", "in_times"}."""
    device = torch.device(device)
    counts = sorted({c + r for c in range(low, high + 1, 8) for r in (0, 1, 2) if c + r <= high})
    found: dict[str, Any] = {"counts": counts}
    for side in ("out", "in"):
        times = []
        for c in counts:
            c_in, c_out = (64, c) if side == "out" else (c, 64)
            conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).to(device).eval()
            x = torch.randn(1, c_in, size, size, device=device)
            # the fastest of 5: a probe call is ~1 ms, and on a busy machine one call in several waits out
            # another process's time slice, which would draw a staircase that is not the device's
            times.append(time_call(lambda: conv(x), device, warmup=1, repeats=5, statistic=min))  # noqa: B023
        found[f"{side}_times"] = times
    found["alignment"] = max(_staircase_step(counts, found["out_times"]), _staircase_step(counts, found["in_times"]))
    return found


def _staircase_step(counts: list[int], times: list[float], threshold: float = 0.7) -> int:
    """The largest multiple m such that one channel past a multiple of m costs (nearly) the whole next step.

    For every multiple k*m in range, w = (t(k*m + 1) - t(k*m)) / (t((k+1)*m) - t(k*m)): about 1 on a staircase
    of width m, about 1/m on a smooth curve. Steps smaller than 3% of the time are noise and are not judged.
    """
    at = dict(zip(counts, times, strict=True))
    for m in (32, 16, 8):
        ratios = []
        for base in range(m * math.ceil(counts[0] / m), counts[-1] - m + 1, m):
            step = at[base + m] - at[base]
            if step > 0.03 * at[base + m]:
                ratios.append((min(at[base + 1], at[base + 2]) - at[base]) / step)
        if ratios and statistics.median(ratios) >= threshold:
            return m
    return 1


def device_alignment(device: torch.device | str = "cpu") -> int:
    """The channel multiple the device runs fastest: from `override`, this process, the disk cache or a probe."""
    injected = injected_alignment()
    if injected is not None:
        return injected
    device = torch.device(device)
    key = device_key(device)
    name = digest({"probe": key, "statistic": "min"})
    if name not in _ALIGNMENTS:
        path = cache_dir() / f"probe-{name}.json"
        cached = read_json(path)
        if cached is None:
            cached = {"format": FORMAT, **key, **probe_alignment(device)}
            write_json(path, cached)
        _ALIGNMENTS[name] = int(cached["alignment"])
    return _ALIGNMENTS[name]
