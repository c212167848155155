"""Find the channel groups the dependency graph gets wrong, before anything is pruned.

Some graphs cannot be followed: a `view` with a channel count written into the code, a `bmm` that mixes channels
with positions, a custom autograd function. Removing one channel from such a group breaks the forward or changes an
output. Every candidate group loses one channel at once on a copy; if the copy still answers like the original,
all groups are fine (the common case: one copy and one forward). Otherwise the set is bisected until the culprits
are named. Each trial prunes a copy of the graph with its model (`PruningGraph.copy`): no trace and no group
search is repeated (re-tracing per trial was 80 of the 90 s that a YOLO11-style model spent here).
"""

from __future__ import annotations

from typing import Any

from ..safety import verify_outputs
from .pruning_graph import PruningGraph

__all__ = ["find_unsafe_groups", "protect_unsafe_groups"]


def protect_unsafe_groups(graph: PruningGraph, example_inputs: Any, expected: dict[str, tuple[int, ...]],
                          strict: bool = False) -> None:
    """Probe the groups and keep whole (or, with `strict`, refuse) the ones the graph gets wrong; each is named in
    `graph.warnings`. A graph made only of convolutions, norms, linear layers and channel-wise operations needs no
    probe.

    Raises:
        ValueError: `strict` and some part of the graph cannot be pruned safely (the message lists each part).
    """
    roots = [g.root for g in graph.groups if g.prunable] if graph.unusual else []
    unsafe = find_unsafe_groups(graph, example_inputs, roots, expected)
    for group in graph.groups:
        if group.root in unsafe:
            group.kept_whole = f"kept whole: removing one channel fails ({unsafe[group.root]})"
            graph.warnings.append(f"{group.root}: {group.kept_whole}")
    if strict and graph.warnings:
        raise ValueError("strict=True and the graph has parts taskprune cannot prune safely:\n  "
                         + "\n  ".join(graph.warnings))


def find_unsafe_groups(graph: PruningGraph, example_inputs: Any, roots: list[str],
                       expected: dict[str, tuple[int, ...]]) -> dict[str, str]:
    """Root layer name -> why removing one of its channels is unsafe, for every unsafe group among `roots`.

    `graph` and its model are not changed; every trial works on a copy.
    """
    unsafe: dict[str, str] = {}

    def probe(candidates: list[str]) -> None:
        failure = _try_removing_one(graph, example_inputs, candidates, expected)
        if failure is None:
            return
        if len(candidates) == 1:
            unsafe[candidates[0]] = failure
            return
        middle = len(candidates) // 2
        before = len(unsafe)
        probe(candidates[:middle])
        probe(candidates[middle:])
        if len(unsafe) == before:  # each half alone is fine, only together they fail: keep them all whole
            unsafe.update(dict.fromkeys(candidates, failure))

    if roots:
        probe(list(roots))
    return unsafe


def _try_removing_one(graph: PruningGraph, example_inputs: Any, roots: list[str],
                      expected: dict[str, tuple[int, ...]]) -> str | None:
    try:
        trial = graph.copy()
        wanted = set(roots)
        trial.apply({g.index: [0] for g in graph.groups if g.root in wanted and g.channels > 1})
        verify_outputs(trial.model, example_inputs, expected, graph.output_layers_by_key)
    except Exception as error:  # any failure means "do not prune these"; the message says what happened
        return f"{type(error).__name__}: {error}".splitlines()[0][:200]
    return None
