"""The surgery check of benchmarks/real_diagnose.py: a pruned network computes the dense network with the removed
channels zeroed, and the check notices when the zeroed channels are not the removed ones."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import real_diagnose  # noqa: E402

import taskprune  # noqa: E402
from taskprune.tasks import flatten_outputs  # noqa: E402
from taskprune.testing import get_test_model  # noqa: E402


def outputs(model, example, removed):
    hooks = real_diagnose.zero_channels(model, removed)
    try:
        with torch.no_grad():
            return flatten_outputs(model(example))
    finally:
        for hook in hooks:
            hook.remove()


def test_pruned_equals_dense_with_the_removed_channels_zeroed_and_not_with_others():
    torch.manual_seed(0)
    model, example = get_test_model("espnet_like")()
    model.eval()
    result = taskprune.prune(model, example, ratio=0.3, round_to=None, progress=False)
    removed = real_diagnose.removed_channels(model, result.channel_map)
    assert removed  # something was cut
    with torch.no_grad():
        pruned = flatten_outputs(result.model(example))
    masked = outputs(model, example, removed)
    assert all(torch.allclose(p, m, atol=1e-4) for p, m in zip(pruned, masked, strict=True))
    # the check can fail: zero the kept channels of one cut layer instead of its removed ones
    name, channels = next(iter(removed.items()))
    kept = [c for c in range(real_diagnose.width(dict(model.named_modules())[name])) if c not in channels][:1]
    wrong = {**removed, name: kept}
    shifted = outputs(model, example, wrong)
    assert max(float((p - s).abs().max()) for p, s in zip(pruned, shifted, strict=True)) > 1e-3
