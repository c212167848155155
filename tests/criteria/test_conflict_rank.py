"""benchmarks/conflict_rank.py: the rank-based conflict criterion measured beside conflict_taylor."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import taskprune
from taskprune.criteria import ScoringContext
from taskprune.criteria.gradients import GradientStats
from taskprune.groups import ChannelGroup, ParamSlice

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from conflict_rank import ConflictRank, percentile_ranks  # noqa: E402


def group(index: int, param: str, channels: int, tasks: str) -> ChannelGroup:
    piece = ParamSlice(param, 0, torch.arange(channels), torch.arange(channels))
    return ChannelGroup(index=index, layer=param, channels=channels, out_layers=(param,), in_layers=(),
                        slices=(piece,), tasks=frozenset(tasks))


def test_percentile_ranks_share_ties_and_reach_one():
    ranks = percentile_ranks(torch.tensor([3.0, 1.0, 2.0, 2.0]))
    torch.testing.assert_close(ranks, torch.tensor([1.0, 0.25, 0.5, 0.5]))


def context(grad_b_sign: float) -> ScoringContext:
    """Two groups: "s" serves tasks a and b, "h" only b. Task a's Taylor scores are heavy-tailed (one channel
    1000x the rest), task b's are flat; task b's gradient on "s" points along task a's times `grad_b_sign`."""
    groups = [group(0, "s", 3, "ab"), group(1, "h", 2, "b")]
    taylor = {"a": [torch.tensor([1000.0, 2.0, 1.0]), torch.zeros(2)],
              "b": [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([4.0, 5.0])]}
    grad_a = torch.tensor([[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]])
    stats = GradientStats(tasks=("a", "b"), batches=1, task_taylor=taylor,
                          task_gradients={"a": {"s": grad_a, "h": torch.ones(2, 2)},
                                          "b": {"s": grad_b_sign * grad_a, "h": torch.ones(2, 2)}})
    return ScoringContext(model=torch.nn.Identity(), groups=groups, gradients=stats)


def test_max_of_per_task_ranks_when_tasks_agree():
    shared, head = ConflictRank().score(context(grad_b_sign=1.0))
    # task a ranks only the 3 channels it reaches: 1, 2/3, 1/3 (its 1000x channel counts once, not 1000 times);
    # task b ranks all 5: "s" 1/5, 3/5, 2/5 and "h" 4/5, 1
    torch.testing.assert_close(shared, torch.tensor([1.0, 2 / 3, 2 / 5]))
    torch.testing.assert_close(head, torch.tensor([4 / 5, 1.0]))


def test_opposed_gradients_halve_the_shared_scores_at_the_default_lam():
    shared, head = ConflictRank().score(context(grad_b_sign=-1.0))
    torch.testing.assert_close(shared, torch.tensor([0.5, 1 / 3, 0.2]))
    torch.testing.assert_close(head, torch.tensor([4 / 5, 1.0]))  # one task: no conflict, no penalty
    shared_only_ranks, _ = ConflictRank(lam=0.0).score(context(grad_b_sign=-1.0))
    torch.testing.assert_close(shared_only_ranks, torch.tensor([1.0, 2 / 3, 2 / 5]))


def test_bad_lam_and_missing_gradients_are_refused():
    with pytest.raises(ValueError, match=r"conflict_rank lam must be in \[0, 1\], got 1.5"):
        ConflictRank(lam=1.5)
    bare = ScoringContext(model=torch.nn.Identity(), groups=[group(0, "s", 3, "ab")])
    with pytest.raises(ValueError, match="criterion 'conflict_rank' needs gradient statistics"):
        ConflictRank().score(bare)


def test_prunes_a_two_head_model_to_the_budget(two_head, two_head_tasks, batches):
    model, x = two_head
    before = [p.clone() for p in model.parameters()]
    result = taskprune.prune(model, x, ratio=0.3, importance=ConflictRank(), tasks=two_head_tasks, data=batches,
                             num_batches=len(batches), round_to=None, progress=False)
    reached = 1 - result.report.params_after / result.report.params_before
    assert abs(reached - 0.3) <= 0.01
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # caller's model untouched
