"""What every benchmark script shares: where results go, writing them atomically, skipping finished runs,
claiming a run so two processes never do the same one, and a record of the code and machine behind a number."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["RESULTS", "ROOT", "claim", "done", "machine", "write_json"]


def write_json(path: Path, record: Any) -> None:
    """Write `record` as indented JSON; a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(record, indent=1) + "\n")
    partial.replace(path)


def done(path: Path, settings: dict) -> bool:
    """Whether `path` holds a finished run made with `settings` (compared as JSON)."""
    if not path.exists():
        return False
    return json.loads(path.read_text())["settings"] == json.loads(json.dumps(settings))


def claim(path: Path) -> bool:
    """Take a run for this process: True when its claim file was made here, or left by a process that is gone
    (a session's end); False while another living process of the same script holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            with open(path, "x") as handle:
                handle.write(f"{os.getpid()} {Path(sys.argv[0]).name}")
            return True
        except FileExistsError:
            owner, _, script = path.read_text().partition(" ")
            pid = int(owner) if owner.isdigit() else 0
            if pid == os.getpid():
                return True
            if _alive(pid, script or "python"):
                return False
            path.unlink(missing_ok=True)
    return False


def _alive(pid: int, script: str) -> bool:
    try:
        return script in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


def machine() -> dict[str, Any]:
    """The code and machine behind a number: commit, CPU, cores, torch, threads and the load average now."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    from taskprune.latency.cache import cpu_name

    return {"commit": commit, "cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}
