"""benchmarks/frontier_steps.py: the latency target in steps with a distilled recovery between them. Each step
takes an equal factor of the remaining latency, the recoveries see the channel map against the teacher, and the
last step lands on the asked reduction of the teacher's latency (here the stand-in device of tests/conftest.py,
whose latency is its MACs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from taskprune import latency
from taskprune.testing.tiny import yolo_seg

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import frontier  # noqa: E402
import frontier_steps  # noqa: E402


def test_the_steps_split_the_remaining_latency_into_equal_factors() -> None:
    ratios = frontier_steps.step_ratios(0.5, 3)
    remaining = [1 - r for r in ratios]
    assert remaining[-1] == pytest.approx(0.5)
    assert remaining[0] == pytest.approx(0.5 ** (1 / 3))
    assert remaining[1] / remaining[0] == pytest.approx(remaining[0])
    assert frontier_steps.step_ratios(0.4, 1) == [pytest.approx(0.4)]
    with pytest.raises(ValueError, match="parts"):
        frontier_steps.step_ratios(0.5, 0)


class FakeBench:
    """What prune_in_steps reads of benchmarks/evidence.py's Bench; its fine-tune records what it was given."""

    def __init__(self) -> None:
        self.teacher, self.example = yolo_seg()
        self.teacher.eval()
        self.tasks = None
        self.finetunes: list[tuple[int, int, set[str]]] = []

    def scoring_batches(self, seed: int) -> list[torch.Tensor]:
        return [self.example]

    def finetune(self, student, steps, seed, teacher, channel_map):
        assert teacher is self.teacher
        self.finetunes.append((steps, sum(p.numel() for p in student.parameters()), set(channel_map)))
        return student


def test_pruning_in_steps_recovers_between_and_lands_on_the_asked_latency() -> None:
    bench = FakeBench()
    model, channel_map = frontier_steps.prune_in_steps(bench, 0.5, seed=0, parts=3, between=7,
                                                       importance="magnitude", round_to=None)
    assert [steps for steps, _, _ in bench.finetunes] == [7, 7]  # between the steps, not after the last
    first, second = (params for _, params, _ in bench.finetunes)
    assert second < first < sum(p.numel() for p in bench.teacher.parameters())
    assert bench.finetunes[1][2] >= bench.finetunes[0][2] and channel_map  # the map grows with the steps
    remaining = latency.latency_ratios([bench.teacher, model], bench.example)[1]
    assert remaining == pytest.approx(0.5, rel=0.05 * 1.5)  # three steps of at most 5% each, compounded
    assert sum(p.numel() for p in bench.teacher.parameters()) == sum(  # the teacher is never pruned
        p.numel() for p in yolo_seg()[0].parameters())


def test_the_final_fine_tune_pays_for_the_recoveries_between_steps() -> None:
    stepped = frontier.METHODS["latency_steps3_task_taylor"]
    assert stepped.final_steps(400) + (stepped.parts - 1) * stepped.between == 400
    assert stepped.final_steps(400) == 200
    assert frontier.METHODS["latency_task_taylor"].final_steps(400) == 400
