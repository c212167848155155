"""The on-disk cache of latency tables and probe results, keyed by device, torch version and threads."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

from .._runtime import atomic_write

__all__ = ["FORMAT", "cache_dir", "clear_cache", "cpu_name", "device_key", "digest", "read_json", "write_json"]

FORMAT = 3  # bumped when the cached JSON layout changes; older files are measured again


def cache_dir() -> Path:
    """Where tables and probe results are kept: `$TASKPRUNE_CACHE`, else `~/.cache/taskprune`."""
    return Path(os.environ.get("TASKPRUNE_CACHE") or Path.home() / ".cache" / "taskprune")


def clear_cache() -> int:
    """Delete every cached latency table and device probe (in `cache_dir()`); returns how many files went.

    Example:
        >>> taskprune.latency.clear_cache()   # or: rm ~/.cache/taskprune/latency-*.json ~/.cache/taskprune/probe-*
    """
    removed = 0
    for path in list(cache_dir().glob("latency-*.json")) + list(cache_dir().glob("probe-*.json")):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def device_key(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name()
    return {"device": f"{device.type}:{name}", "torch": torch.__version__, "threads": torch.get_num_threads()}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (a concurrent reader sees the old file or the new one); a read-only cache only costs a
    re-measurement."""
    try:
        atomic_write(path, lambda partial: partial.write_text(json.dumps(data, indent=1)))
    except OSError:
        pass
