"""The criterion protocol: its flags are declared with defaults, and what a criterion declares reaches the planner."""

from __future__ import annotations

import pytest
import torch

import taskprune
from taskprune.criteria import (
    ConflictTaylor,
    Criterion,
    Magnitude,
    Random,
    ScoringContext,
    TaskTaylor,
    Taylor,
    WithDefaults,
    get_criterion,
)


class Bare:
    """A criterion written with the three required members only (the docs' L1 example is one)."""

    name = "bare"
    needs: frozenset[str] = frozenset()

    def score(self, context: ScoringContext) -> list[torch.Tensor]:
        return [torch.ones(g.channels) for g in context.groups]


class OnlyComparable(Bare):
    comparable = True


@pytest.mark.parametrize("criterion", [Magnitude(), Random(), Taylor(), TaskTaylor(), ConflictTaylor()])
def test_every_builtin_criterion_declares_the_whole_protocol(criterion):
    assert isinstance(criterion, Criterion)
    assert get_criterion(criterion) is criterion
    assert isinstance(criterion.comparable, bool) and isinstance(criterion.normalised, bool)


def test_the_flags_default_to_false_for_a_subclass():
    class Declared(Criterion):
        name, needs = "declared", frozenset()

        def score(self, context: ScoringContext) -> list[torch.Tensor]:
            return []

    assert (Declared.comparable, Declared.normalised) == (False, False)
    assert get_criterion(Declared()).comparable is False


def test_a_criterion_without_the_flags_gets_their_defaults_and_keeps_what_it_declares():
    bare = get_criterion(Bare())
    assert isinstance(bare, WithDefaults) and isinstance(bare, Criterion)
    assert (bare.name, bare.needs, bare.comparable, bare.normalised) == ("bare", frozenset(), False, False)
    partial = get_criterion(OnlyComparable())
    assert (partial.comparable, partial.normalised) == (True, False)
    assert not isinstance(Bare(), Criterion)  # the protocol declares the flags; get_criterion supplies them


def test_a_criterion_that_normalised_its_scores_is_planned_as_it_scored(two_head):
    """One group scored a hundred times lower: divided by its own mean (normalised=False, the default) it competes
    like every other group; declared normalised, the planner takes its channels first."""
    model, x = two_head

    class Skewed(Bare):
        name = "skewed"

        def __init__(self, normalised: bool):
            self.normalised = normalised

        def score(self, context: ScoringContext) -> list[torch.Tensor]:
            ramp = [torch.linspace(1.0, 2.0, g.channels) for g in context.groups]
            return [r * (0.01 if g.root == "trunk.0" else 1.0) for r, g in zip(ramp, context.groups, strict=True)]

    kept = {}
    for normalised in (False, True):
        result = taskprune.prune(model, x, ratio=0.3, importance=Skewed(normalised), round_to=None, progress=False)
        kept[normalised] = len(result.channel_map.get("trunk.0", range(16)))
    assert kept[True] < kept[False]


def _recorded_before(obj: object) -> dict[str, object]:
    """What a prune_within checkpoint recorded of a criterion object before `settings()`: its `__dict__`."""
    from taskprune.steps.checkpoint import plain_option

    options = {k: plain_option(v) for k, v in sorted(vars(obj).items()) if k != "needs"}
    return {f"importance.{k}": v for k, v in options.items() if not (isinstance(v, str) and v.startswith("<"))}


def test_settings_record_what_checkpoints_recorded_so_far():
    """A checkpoint written before `settings()` must still resume: the recorded keys and values do not move."""
    import torch_pruning as tp

    from taskprune.steps.checkpoint import criterion_options

    class WithOptions(Bare):
        def __init__(self) -> None:
            self.width, self.needs = 3, frozenset()

    conflict = ConflictTaylor(lam=0.25, measure="sign_purity", task_weights={"a": 2.0})
    assert conflict.settings() == {"across_groups": False, "lam": 0.25, "measure": "sign_purity",
                                   "normalised": True, "task_weights": {"a": 2.0}}
    for criterion in [conflict, ConflictTaylor(), TaskTaylor(task_weights={"b": 3}), TaskTaylor(), Magnitude(),
                      WithOptions(), tp.importance.GroupMagnitudeImportance(p=1)]:
        assert criterion_options(criterion) == _recorded_before(criterion), criterion
    assert criterion_options("conflict_taylor") == _recorded_before(ConflictTaylor())
    assert criterion_options(WithOptions()) == {"importance.width": 3}
