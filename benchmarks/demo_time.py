"""How long `taskprune demo` takes: wall time, the demo process's own CPU time and the machine's load, per run.

Each run is a fresh `python -m taskprune demo` process (so the first-use costs a user pays are counted), timed from
outside: wall time, user + system CPU seconds and peak memory from the kernel's record of the finished child, and
the 1-minute load average before and after. The issue's goal is --quick in at most 90 s and the full demo in at
most 6 minutes of wall time on 2 idle cores (median of 3 runs); on a loaded machine the wall time says little and
the CPU seconds are the figure to compare.

    python benchmarks/demo_time.py --mode quick --runs 3
    python benchmarks/demo_time.py --mode full --runs 3 --threads 2

Writes benchmarks/results/demo_time_<mode>[_<threads>threads].json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import RESULTS, ROOT, machine, write_results


def run_once(mode: str, threads: int | None) -> dict[str, Any]:
    """One demo in a child process; its wall time, CPU seconds (user + system), peak memory and the load."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "taskprune", "demo", "--out", out]
        if mode == "quick":
            command.append("--quick")
        if threads:
            command += ["--threads", str(threads)]
        environment = dict(os.environ, PYTHONPATH=str(ROOT))
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        child = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        output = child.stdout.read().decode(errors="replace") if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"the demo failed (exit {child.returncode}):\n{output[-3000:]}")
        table = (Path(out) / "demo.md").read_text()
        within = json.loads((Path(out) / "within.json").read_text())["reduction"]
    said = [line.strip() for line in output.splitlines() if line.startswith(("done in", "  prune_within returned"))]
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "max_rss_mb": usage.ru_maxrss / 1024,
            "load_before": load_before, "load_after": os.getloadavg()[0], "demo_says": said, "table": table,
            "within_reduction": within}


def summarise(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {f"median_{key}": statistics.median(r[key] for r in runs) for key in ("wall_s", "cpu_s", "max_rss_mb")} | {
        "max_load_before": max(r["load_before"] for r in runs)}


def markdown(record: dict[str, Any]) -> str:
    s, m = record["summary"], record["machine"]
    lines = [f"# taskprune demo{' --quick' if record['settings']['mode'] == 'quick' else ''}: time per run", "",
             f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, "
             f"threads {record['settings']['threads'] or 'default'},"
             f" commit {m['commit'][:10]}{' with uncommitted changes' if m.get('uncommitted_changes') else ''}", "",
             "| run | wall (s) | CPU (s, user + sys) | peak memory (MB) | load before | load after |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {i + 1} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['max_rss_mb']:.0f} | {r['load_before']:.2f} | "
              f"{r['load_after']:.2f} |" for i, r in enumerate(record["runs"])]
    lines += [f"| median | {s['median_wall_s']:.1f} | {s['median_cpu_s']:.1f} | {s['median_max_rss_mb']:.0f} | | |",
              "", "Load: the 1-minute load average; above about 0.5 the machine was not idle and the wall time "
              "includes waiting for other processes.", "",
              *[f"Run {i + 1}: " + "; ".join(r.get("demo_says", [])) for i, r in enumerate(record["runs"])]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="the demo's --threads (default: torch's)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    runs = []
    for i in range(args.runs):
        runs.append(run_once(args.mode, args.threads))
        print(f"run {i + 1}/{args.runs}: {runs[-1]['wall_s']:.1f} s wall, {runs[-1]['cpu_s']:.1f} CPU-s, "
              f"load {runs[-1]['load_before']:.2f} -> {runs[-1]['load_after']:.2f}", flush=True)
    changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                             text=True).stdout.strip()
    record = {"settings": {"mode": args.mode, "runs": args.runs, "threads": args.threads},
              "machine": machine() | {"uncommitted_changes": bool(changed)},
              "runs": runs, "summary": summarise(runs)}
    stem = f"demo_time_{args.mode}" + (f"_{args.threads}threads" if args.threads else "")
    write_results(RESULTS, stem, record, markdown(record))
    print(markdown(record))


if __name__ == "__main__":
    main()
