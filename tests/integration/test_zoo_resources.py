"""`prune(model, x, ratio=0.3)` on every zoo model stays within a stated peak memory and CPU time.

The models are pruned one after another in one child process (one torch import, so the file stays fast), with
`round_to=None` (no device probe: this is about the graph, the probe and the plan) and one torch thread. The
child's peak RSS (its own VmHWM: `ru_maxrss` would include the parent's RSS at the fork) is that of the prunes;
CPU time (user + sys) is measured per model, being less
sensitive than wall time to the other jobs on a shared machine. The child's address space is capped at 6 GiB so a
runaway ends in a MemoryError instead of taking the machine.

Measured on the 2-core development machine (torch 2.13 CPU, load average 3 to 4.5 from other jobs), with the
bounded search: peak RSS 411 MB for all 13 zoo models pruned in one process; the most CPU went to yolo11_seg_like
(6.1 s, of 9.2 s wall: 59 probe trials to find its nine groups that torch-pruning maps wrongly through `chunk`
and `split`) and yolov8_seg_like
(3.7 s); every other model took under 1 s. Before, yolo11_seg_like alone grew to 7.5 GB and ended in a
MemoryError after 160 s (under an 8 GB cap). Bounds: 1.5 GB peak RSS and 60 s of CPU per model, far above the
measured figures and far below a runaway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import taskprune
from taskprune.testing import list_test_models

ROOT = Path(taskprune.__file__).resolve().parents[1]  # the checkout whose taskprune is under test
PEAK_RSS_BOUND_MB = 1536
CPU_BOUND_S = 60.0

_CHILD = """
import json, resource, sys, time, warnings
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import torch
torch.set_num_threads(1)
warnings.simplefilter("ignore")
import taskprune
from taskprune.testing import get_test_model
from taskprune.testing.memory import peak_mb
for name in sys.argv[1:]:
    model, x = get_test_model(name)()
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    try:
        reached = taskprune.prune(model, x, ratio=0.3, round_to=None, progress=False).report.reached
    except Exception as error:
        reached = f"{type(error).__name__}: {error}"[:300]
    print(json.dumps({"model": name, "cpu_s": time.process_time() - start_cpu,
                      "wall_s": time.perf_counter() - start_wall, "reached": reached,
                      "peak_rss_mb": peak_mb()}), flush=True)
"""


def test_every_zoo_model_prunes_within_stated_memory_and_cpu_time():
    names = list_test_models(kind="zoo")
    child = subprocess.run([sys.executable, "-c", _CHILD, *names], capture_output=True, text=True, timeout=900,
                           cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    runs = [json.loads(line) for line in child.stdout.splitlines() if line.startswith("{")]
    assert [run["model"] for run in runs] == names, child.stderr[-3000:]
    for run in runs:
        assert isinstance(run["reached"], float), run
        assert run["cpu_s"] < CPU_BOUND_S, run
    assert max(run["peak_rss_mb"] for run in runs) < PEAK_RSS_BOUND_MB, runs
