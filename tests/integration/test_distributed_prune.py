"""Under torchrun every rank reaches the plan a single process reaches over the same batches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dist_prune_worker
import torch

REPO = Path(__file__).resolve().parents[2]


def test_two_ranks_reach_the_single_process_plan(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(REPO / "tests" / "dist_prune_worker.py"), str(tmp_path)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    saved = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    ranks = [s["channel_map"] for s in saved]
    single = dist_prune_worker.plan(dist_prune_worker.batches())
    assert ranks[0] == ranks[1] == single
    # round_to="auto" with a different probe answer on each rank: both take rank 0's plan
    rank0_alone = dist_prune_worker.auto_plan(dist_prune_worker.batches(), alignment=8)
    assert dist_prune_worker.auto_plan(dist_prune_worker.batches(), alignment=2) != rank0_alone
    assert saved[0]["auto"] == saved[1]["auto"] == rank0_alone
    # and the halves alone would not have given it: the all-reduce is doing the work
    assert dist_prune_worker.plan(dist_prune_worker.batches()[0::2]) != single
