"""The contract the example exists for: DrivingNet prunes with task-aware criteria and stays a DrivingNet."""

from __future__ import annotations

import torch

import taskprune
from taskprune import driving


def test_conflict_taylor_prunes_drivingnet_and_keeps_outputs():
    torch.manual_seed(0)
    model = driving.DrivingNet(size="n")
    batches = driving.loader(driving.SyntheticDriving(8, size=(64, 96)), batch_size=4)
    example = torch.rand(1, 3, 64, 96)
    result = taskprune.prune(model, example, ratio=0.3, importance="conflict_taylor",
                             tasks=driving.driving_tasks(), data=batches, num_batches=2, progress=False)
    before = sum(p.numel() for p in model.parameters())
    after = sum(p.numel() for p in result.model.parameters())
    assert 0.6 * before < after < 0.8 * before
    pruned = result.model.eval()
    with torch.no_grad():
        out, reference = pruned(example), model.eval()(example)
    assert [t.shape for t in out.det] == [t.shape for t in reference.det]
    assert out.drivable.shape == out.lane.shape == (1, 2, 64, 96)
    assert set(driving.evaluate(pruned, batches)) == {"recall", "map50", "drivable_miou", "lane_acc", "lane_iou"}
