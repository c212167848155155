"""Refusals advise only what can help, and summarise the groups kept whole in a sentence, however many there are."""

from __future__ import annotations

import pytest

from taskprune.budget import UnreachableBudget, budget_fix, kept_whole_summary, with_kept_whole


@pytest.mark.parametrize("closest", [0.0, 0.0004, -0.96])
def test_a_refusal_never_advises_a_ratio_of_zero_or_less(closest):
    """'lower ratio to 0 or less' and 'lower ratio to -0.96' were printed."""
    advice = budget_fix(0.3, closest, 0.8, finer=False, capped=False)
    assert "lower ratio" not in advice and "raise max_layer_ratio" not in advice
    assert advice.startswith("no ratio, max_layer_ratio or round_to gets closer")


def test_a_refusal_advises_what_can_help():
    assert budget_fix(0.5, 0.432, 0.8, finer=True, capped=True) == (
        "lower ratio to 0.432 or less, raise max_layer_ratio (now 0.8) or pass a finer round_to (round_to=None "
        "does not round)")
    assert budget_fix(0.5, 0.432, 0.8, finer=False, capped=False) == "lower ratio to 0.432 or less"
    assert budget_fix(0.5, 0.432, 1.0, finer=False, capped=True) == "lower ratio to 0.432 or less"
    assert budget_fix(0.1, 0.137, 0.8, finer=False) == "raise ratio to 0.137 or more"


def test_forty_groups_kept_whole_are_summarised_in_a_sentence():
    """Listing 'kept whole: removing one channel fails (...)' once per group ran to 900 characters and more."""
    reasons = {f"blocks.{i}.attn.qkv": f"kept whole: removing one channel fails (RuntimeError: the pruned model fails "
                                       f"in layer 'blocks.{i}.attn': shape '[1, 64, 4, 24]' is invalid)"
               for i in range(40)}
    reasons["stem.1"] = "grouped convolution stem.1 (groups=4) is kept whole"
    summary = kept_whole_summary(reasons)
    assert summary.startswith("41 groups are kept whole: 40 because removing one channel breaks the forward: "
                              "blocks.0.attn.qkv, blocks.1.attn.qkv, blocks.2.attn.qkv and 37 more (the first: "
                              "RuntimeError: the pruned model fails in layer 'blocks.0.attn'")
    assert summary.endswith("; 1 because they run through a grouped convolution: stem.1")
    assert len(summary) < 400
    refusal = with_kept_whole(UnreachableBudget("cannot remove 30.0%", closest=0.1, round_to=4), reasons)
    assert str(refusal).startswith("cannot remove 30.0%. 41 groups are kept whole")
    assert (refusal.closest, refusal.round_to) == (0.1, 4)
    assert with_kept_whole(refusal, {}) is refusal
