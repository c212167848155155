"""A process's own peak memory, for the resource tests and benchmarks that prune in a child process.

Example (the last line of a child script):
    >>> from taskprune.testing.memory import peak_mb
    >>> print("peak MB", int(peak_mb()))  # doctest: +SKIP
"""

from __future__ import annotations

import resource

__all__ = ["peak_mb"]


def peak_mb() -> float:
    """This process's peak resident memory in MB: its own high-water mark (`VmHWM` on Linux), since
    `ru_maxrss` keeps the parent's RSS across fork and exec; `ru_maxrss` where `/proc` is missing."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
