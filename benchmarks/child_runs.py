"""What the two resource benchmarks (resources.py on the zoo, ultralytics_resources.py on Ultralytics' models)
share: running one pipeline in its own child process, reading the row it prints, the medians of repeats, a model's
row comparing the two pipelines, and that row in the markdown table.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

from harness import ROOT

__all__ = ["CHILD_END", "MEASURES", "add_plain", "medians", "ours_row", "run_child", "table_rows"]

MEASURES = ("wall_s", "cpu_s", "peak_rss_mb")

# How a child script ends, after a `try:` block that times a pipeline into `row` from `start_cpu` and `start_wall`:
# the error of a pipeline that raised (with the time until then), the child's peak RSS, and the row as the JSON line
# that `run_child` reads.
CHILD_END = """\
except Exception as error:
    row.update(error=f"{type(error).__name__}: {error}".splitlines()[0][:300],
               cpu_s=time.process_time() - start_cpu, wall_s=time.perf_counter() - start_wall)
from taskprune.testing.memory import peak_mb  # after the clock: taskprune is loaded by now
row.update(peak_rss_mb=peak_mb())
print(json.dumps(row))
"""


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


def ours_row(name: str, ours: list[dict]) -> dict:
    """A model's row begun with our pipeline's runs: their medians and parameter cut, or `ours_error` when one
    of them failed."""
    row: dict = {"model": name, "ours_runs": ours}
    if any("error" in run for run in ours):
        row["ours_error"] = next(run["error"] for run in ours if "error" in run)
        return row
    row.update(ours=medians(ours), reached=ours[0]["reached"])
    return row


def add_plain(row: dict, plain: list[dict], tp_ratio: float) -> dict:
    """`row` completed with plain torch-pruning's runs at channel ratio `tp_ratio`, and ours / plain per measure."""
    row.update(plain_runs=plain, plain=medians(plain), tp_pruning_ratio=tp_ratio, plain_reached=plain[0]["reached"])
    row["ours_over_plain"] = {k: row["ours"][k] / row["plain"][k] for k in row["ours"]}
    return row


def table_rows(rows: list[dict], seconds: tuple[str, ...], digits: int, ratios: tuple[str, ...]) -> list[str]:
    """The markdown table's line for each row: model, parameter cut, the `seconds` measures (to `digits` places)
    and the peak RSS as ours / plain, then the `ratios` measures as ours/plain; where a pipeline failed, why."""
    lines = []
    for row in rows:
        if "ours" not in row:
            lines.append(f"| {row['model']} | ours failed: {row.get('ours_error')} |" + " |" * (len(seconds) + 2))
            continue
        o = row["ours"]
        if "plain" not in row:
            cells = [f"{row['reached']:.3f} / -", *(f"{o[k]:.{digits}f} / -" for k in seconds),
                     f"{o['peak_rss_mb']:.0f} / -", f"torch-pruning: {row.get('plain_error')}"]
        else:
            p, r = row["plain"], row["ours_over_plain"]
            broken = row["plain_runs"][0].get("broken")
            cells = [f"{row['reached']:.3f} / {row['plain_reached']:.3f}",
                     *(f"{o[k]:.{digits}f} / {p[k]:.{digits}f}" for k in seconds),
                     f"{o['peak_rss_mb']:.0f} / {p['peak_rss_mb']:.0f}",
                     ", ".join(f"{r[k]:.2f}x" for k in ratios)
                     + (f"; torch-pruning's model no longer runs: {broken}" if broken else "")]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return lines
