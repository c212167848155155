"""One rank of the two-process pruning test: `torchrun --standalone --nproc_per_node 2 this.py OUT_DIR`.

Each rank scores its own half of the batches (rank r takes batches r, r + 2, ...); the gradient statistics are
all-reduced inside prune(), so every rank must reach the plan one process reaches over all batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

import taskprune
from taskprune.testing import get_test_model


def energy(task_output, batch):
    return task_output.float().pow(2).mean()


def plan(batches: list[torch.Tensor], round_to: int | str | None = None) -> dict[str, list[int]]:
    model, x = get_test_model("tiny_driving")()
    base = taskprune.Tasks.from_output(model(x))
    tasks = taskprune.Tasks(outputs=dict(base.outputs), losses=dict.fromkeys(base.outputs, energy))
    result = taskprune.prune(model, x, ratio=0.4, importance="conflict_taylor", tasks=tasks, data=batches,
                             num_batches=len(batches), round_to=round_to, progress=False)
    return result.channel_map


def auto_plan(batches: list[torch.Tensor], alignment: int) -> dict[str, list[int]]:
    """round_to="auto" on a device whose probe answers `alignment`."""
    with taskprune.latency.override(alignment=alignment):
        return plan(batches, round_to="auto")


def batches() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    return [torch.randn(2, 3, 64, 64, generator=generator) for _ in range(4)]


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    channel_map = plan(batches()[rank::world])
    # the ranks' probes disagree (as two timings can): every rank must still take rank 0's plan
    auto = auto_plan(batches()[rank::world], alignment=8 if rank == 0 else 2)
    torch.save({"channel_map": channel_map, "auto": auto}, out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
