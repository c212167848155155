"""One rank of the two-process fine-tune test: `torchrun --standalone --nproc_per_node 2 this.py OUT_DIR`.

Every rank starts from different random weights (DDP must broadcast rank 0's), fine-tunes with distillation
through an adapter on a list of batches (strided per rank), then without a teacher on a Dataset (DistributedSampler),
then a model with a BatchNorm whose statistics are re-estimated at the end (bn_batches), and saves what it ended
with and which samples it saw to OUT_DIR/rank{rank}.pt for the test to compare.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from taskprune.distill import Distill, FeatureDistiller
from taskprune.tasks import Tasks
from taskprune.train import finetune


class TwoTaskNet(nn.Module):
    """A two-conv trunk feeding a segmentation head and a classifier (test_train.py uses it too)."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 8, 3, padding=1))
        self.seg = nn.Conv2d(8, 1, 1)
        self.cls = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        features = torch.relu(self.trunk(x))
        return {"seg": self.seg(features), "cls": self.cls(features.mean((2, 3)))}


class Samples(torch.utils.data.Dataset):
    def __init__(self, count: int) -> None:
        self.images = torch.randn(count, 3, 8, 8, generator=torch.Generator().manual_seed(7))

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"image": self.images[index], "index": torch.tensor(index)}


def main(out_dir: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    seen: list[int] = []

    def seg_loss(out: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.extend(batch["index"].tolist())
        return F.binary_cross_entropy_with_logits(out, (batch["image"].mean(1, keepdim=True) > 0).float())

    tasks = Tasks(outputs={"seg": lambda out: out["seg"], "cls": lambda out: out["cls"]},
                  losses={"seg": seg_loss,
                          "cls": lambda out, b: F.cross_entropy(out, (b["image"][:, 0].mean((1, 2)) > 0).long())},
                  inputs=lambda batch: batch["image"])
    torch.manual_seed(100)
    teacher = TwoTaskNet(8)
    torch.manual_seed(rank)  # different on every rank: DDP must make the replicas equal
    student = TwoTaskNet(4)
    initial = {k: v.clone() for k, v in student.state_dict().items()}

    adapters: dict[str, torch.Tensor] = {}
    remove = FeatureDistiller.remove

    def remove_and_keep_adapters(self: FeatureDistiller) -> None:
        adapters.update({k: v.detach().clone() for k, v in self.state_dict().items()})
        remove(self)

    FeatureDistiller.remove = remove_and_keep_adapters  # type: ignore[method-assign]
    samples = Samples(12)
    # Five batches: rank 0 takes batches 0 and 2, rank 1 batches 1 and 3, and the incomplete last round is dropped.
    batches = [{"image": samples.images[i:i + 2], "index": torch.arange(i, i + 2)} for i in range(0, 10, 2)]
    finetune(student, tasks, batches, epochs=1, teacher=teacher, channel_map={"trunk.0": [0, 2, 5, 7]},
             distill=Distill(layers=("trunk.0", "trunk.2"), align="adapter", loss="pkd"), lr=1e-2,
             progress=False, checkpoint=out_dir / f"checkpoint_rank{rank}.pt")
    seen_strided, seen[:] = list(seen), []
    finetune(student, tasks, samples, epochs=2, batch_size=2, lr=1e-2, progress=False)
    seen_sampler = list(seen)
    normed = TwoTaskNet(4)
    normed.trunk.insert(0, nn.BatchNorm2d(3))  # re-estimated on each rank's own samples, then averaged
    finetune(normed, tasks, samples, epochs=1, batch_size=2, lr=1e-2, bn_batches=2, bn_mode="train",
             progress=False)
    torch.save({"state": student.state_dict(), "initial": initial, "adapters": adapters,
                "seen_strided": seen_strided, "seen_sampler": seen_sampler, "normed": normed.state_dict()},
               out_dir / f"rank{rank}.pt")
    print(f"rank {rank}: results saved", file=sys.stderr, flush=True)  # a failure's log then says how far it got
    # Neither rank may close its connections while the other still uses them: tearing gloo down unsynchronised
    # aborted rank 0 once in CI ("terminate called without an active exception", after 650 green runs).
    dist.barrier()
    dist.destroy_process_group()
    print(f"rank {rank}: process group destroyed", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
