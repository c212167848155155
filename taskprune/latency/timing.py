"""End-to-end timing on the current device: warm-up, repeats, medians, models interleaved so that load from
other processes falls on all of them alike (compare models only within one call)."""

from __future__ import annotations

import ctypes
import ctypes.util
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from .._runtime import preserved_modes
from ..tasks import call_model

__all__ = ["LayerTimer", "device_of", "latency_ratios", "measure_latency", "measure_rounds", "relative_spread",
           "steady_allocator", "time_call", "wall_clock"]

LayerTimer = Callable[[nn.Module, Any, int], list[float]]
"""`timer(module, inputs, repeats)`: the seconds of each of `repeats` calls of `module(inputs)`, in eval mode under
no_grad, after a warm-up. `wall_clock()` is the device's; a test passes its own to simulate a loaded machine."""

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters


def steady_allocator() -> bool:
    """Make CPU timings independent of the allocator's history (glibc only; process-wide and permanent).

    By default glibc hands large blocks (a forward's activations) back to the OS when they are freed and maps
    fresh pages for the next forward, and when it does so depends on what the process allocated before. The same
    dense/pruned pair then measures differently before and after other work: 47.6% of dense inside `prune()` and
    54% a minute later for DrivingNet-m at two threads. With blocks up to 32 MB kept in the heap and the heap
    never trimmed below 1 GB, the two agreed (49.3% and 48.6-49.0%). Call it once, before pruning for latency,
    in a process that does nothing else (it keeps freed memory for reuse, as inference servers do).

    Returns:
        True if the settings were applied, False where there is no glibc.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False


def device_of(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (the CPU for a model without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def time_call(fn: Callable[[], Any], device: torch.device, warmup: int = 2, repeats: int = 7,
              statistic: Callable[[list[float]], float] = statistics.median) -> float:
    """Median (or `statistic`) seconds of `fn()` after `warmup` calls (CUDA: events after synchronising)."""
    with torch.no_grad():
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            times.append(_once(fn, device))
    return statistic(times)


def wall_clock(warmup: int = 1) -> LayerTimer:
    """The device's `LayerTimer`: `warmup` calls, then each call timed (CUDA: events after synchronising)."""

    def timer(module: nn.Module, inputs: Any, repeats: int) -> list[float]:
        device = device_of(module)
        with torch.no_grad():
            for _ in range(warmup):
                call_model(module, inputs)
            return [_once(lambda: call_model(module, inputs), device) for _ in range(repeats)]

    return timer


def relative_spread(times: Sequence[float]) -> float:
    """How far repeated timings scatter: their median absolute deviation over their median (0 for one timing)."""
    middle = statistics.median(times)
    if len(times) < 2 or middle <= 0:
        return 0.0
    return statistics.median(abs(t - middle) for t in times) / middle


def _once(fn: Callable[[], Any], device: torch.device) -> float:
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end) / 1000
    begin = time.perf_counter()
    fn()
    return time.perf_counter() - begin


def measure_latency(models: Sequence[nn.Module], example_inputs: Any, *, warmup: int = 2,
                    repeats: int = 9) -> list[float]:
    """Median end-to-end seconds per forward of each model, in eval mode under no_grad.

    The models run round-robin (one forward each per round, the order rotating), so load from other processes
    hits all of them alike: compare the numbers of one call with each other, not across calls.
    """
    return [statistics.median(t) for t in measure_rounds(models, example_inputs, warmup, repeats)]


def latency_ratios(models: Sequence[nn.Module], example_inputs: Any, *, warmup: int = 2,
                   repeats: int = 9) -> list[float]:
    """Each model's latency relative to `models[0]`: the median over rounds of the ratio within one round.

    A ratio of two forwards a fraction of a second apart cancels the load that other processes put on a shared
    machine far better than a ratio of two medians does.
    """
    rounds = measure_rounds(models, example_inputs, warmup, repeats)
    return [statistics.median(t / r for t, r in zip(times, rounds[0], strict=True)) for times in rounds]


def measure_rounds(models: Sequence[nn.Module], example_inputs: Any, warmup: int, repeats: int) -> list[list[float]]:
    """Seconds per forward, per model per round; within a round every model runs once, the order rotating."""
    times: list[list[float]] = [[] for _ in models]
    with preserved_modes(*models, eval=True), torch.no_grad():
        for _ in range(warmup):
            for m in models:
                call_model(m, example_inputs)
        for round_ in range(repeats):
            for offset in range(len(models)):
                i = (round_ + offset) % len(models)
                model = models[i]
                times[i].append(_once(lambda: call_model(model, example_inputs), device_of(model)))  # noqa: B023
    return times
