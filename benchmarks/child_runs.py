"""What the two resource benchmarks (resources.py on the zoo, ultralytics_resources.py on Ultralytics' models)
share: running one pipeline in its own child process, reading the row it prints, and the medians of repeats.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from harness import ROOT

__all__ = ["MEASURES", "medians", "run_child"]

MEASURES = ("wall_s", "cpu_s", "peak_rss_mb")


def run_child(code: str, timeout: float, env: dict[str, str] | None = None,
              cpu_limit: float | None = None) -> dict:
    """Run `code` in a fresh interpreter (one torch thread) and return the JSON row it printed last, or
    {"error": why} when it was stopped, killed or died without one."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"still running after {timeout:.0f} s wall (stopped)"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    if cpu_limit is not None and done.returncode in (-24, 152):  # SIGXCPU
        return {"error": f"still running after {cpu_limit:.0f} CPU seconds (stopped)"}
    if done.returncode == -9:
        return {"error": "killed by SIGKILL (the CPU limit's hard stop, or the kernel's OOM killer)"}
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"the child died (exit {done.returncode}): {tail}"[:300]}


def medians(runs: list[dict]) -> dict[str, float]:
    """The median of each measure over the runs."""
    return {k: statistics.median(run[k] for run in runs) for k in MEASURES}
