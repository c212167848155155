"""The latency target in steps with a short distilled recovery between them, as HALP prunes (Shen et al., NeurIPS
2022, "latency-saliency knapsack" applied in several steps with fine-tuning in between): the frontier's
`latency_steps3_task_taylor`.

The fine-tune budget is the same as every other method's: the recoveries between steps are taken from it, so a
3-step run with 100 steps between gets 400 - 2 * 100 = 200 steps of final fine-tune. Each step's ratio takes the
model to an equal share of the asked speedup (remaining latency (1 - ratio) ** (k / parts) after step k), measured
against the teacher through `taskprune.steps.Steps` from each step's own timing (within 5% of its ask; the errors
compound, and the frontier's bisection of the overall ratio absorbs them); each step scores its channels on the
recovered model, which is what the recovery between steps buys.

    python benchmarks/frontier.py --methods latency_steps3_task_taylor --speedups 2.0 --seeds 0,1,2
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

import taskprune
from taskprune.steps import Steps


def step_ratios(ratio: float, parts: int) -> list[float]:
    """Cumulative latency reductions after each of `parts` steps: equal factors of the remaining latency."""
    if not 0 < ratio < 1 or parts < 1:
        raise ValueError(f"ratio must be in (0, 1) and parts >= 1; got ratio={ratio}, parts={parts}")
    return [1 - (1 - ratio) ** (k / parts) for k in range(1, parts + 1)]


def prune_in_steps(bench: Any, ratio: float, seed: int, *, parts: int, between: int,
                   **options: Any) -> tuple[torch.nn.Module, dict]:
    """The teacher pruned to `ratio` of its latency in `parts` steps, `between` distilled fine-tune steps after
    each step but the last; returns the model and its channel map against the teacher. `options` go to every
    `taskprune.prune` call (importance, round_to, max_layer_ratio, ...)."""
    steps = Steps(bench.teacher)
    for index, cumulative in enumerate(step_ratios(ratio, parts)):
        if index:
            recovered = bench.finetune(steps.model, between, seed + index, bench.teacher, steps.channel_map)
            steps = replace(steps, model=recovered)
        batches = bench.scoring_batches(seed + index)
        result = taskprune.prune(steps.model, bench.example, ratio=steps.step_ratio(cumulative), target="latency",
                                 tasks=bench.tasks, data=batches, num_batches=len(batches), progress=False,
                                 seed=seed, **options)
        steps = steps.then(result)
    return steps.model, steps.channel_map
