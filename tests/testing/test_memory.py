"""taskprune.testing.memory.peak_mb: the process's own high-water mark, which a large allocation raises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import taskprune
from taskprune.testing.memory import peak_mb

ROOT = Path(taskprune.__file__).resolve().parents[1]

_CHILD = """
from taskprune.testing.memory import peak_mb
before = peak_mb()
block = bytearray(200 << 20)  # 200 MB, zero-filled: every page touched
print(before, peak_mb())
"""


def test_a_large_allocation_raises_the_peak_by_its_size():
    child = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, text=True, timeout=120,
                           cwd=ROOT, env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert child.returncode == 0, child.stderr[-2000:]
    before, after = (float(v) for v in child.stdout.split())
    assert 190 < after - before < 260


def test_the_peak_is_this_process_s_own_and_never_below_what_it_holds_now():
    with open("/proc/self/status") as status:
        resident = next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
    assert peak_mb() >= resident > 0
