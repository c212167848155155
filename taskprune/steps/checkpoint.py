"""The folder `prune_within(checkpoint=...)` resumes from, and what it compares before resuming."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._runtime import atomic_write
from ..prune import PruneResult

__all__ = ["Checkpoint", "criterion_options", "plain_option"]


class Checkpoint:
    """The folder `prune_within(checkpoint=...)` resumes from: `state.pt` (settings, frontier, history, channel
    map, random-number states; plain containers) and `step<N>.pt`, the model after the last step within the limits
    (a `taskprune.save` file). `state.pt` is replaced only after the model file it names is complete."""

    def __init__(self, folder: str | os.PathLike[str] | None, settings: dict[str, Any]) -> None:
        self.folder = Path(folder) if folder is not None else None
        self.settings = settings

    def exists(self) -> bool:
        return self.folder is not None and (self.folder / "state.pt").exists()

    def write(self, frontier: list[dict[str, Any]], best: PruneResult | None, generator: torch.Generator | None,
              *, finished: bool) -> None:
        if self.folder is None:
            return
        from ..keeping import save

        # the model is the one after the last step within the limits (the step before, when the last broke one,
        # whose file the previous write left); a new one always overwrites what an interrupted attempt left
        model_file = f"step{max(f['step'] for f in frontier if f['within'])}.pt" if best is not None else None
        if best is not None and model_file is not None and frontier[-1]["within"]:
            save(best, self.folder / model_file)
        state = {"format": "taskprune.within-checkpoint", "settings": self.settings, "frontier": frontier,
                 "finished": finished, "model_file": model_file,
                 "history": best.history if best is not None else [],
                 "channel_map": best.channel_map if best is not None else {},
                 "rng": torch.get_rng_state(), "scoring_rng": None if generator is None else generator.get_state()}
        atomic_write(self.folder / "state.pt", lambda partial: torch.save(state, partial))
        for old in self.folder.glob("step*.pt"):
            if old.name != model_file:
                old.unlink()

    def resume(self, model: nn.Module, example_inputs: Any, generator: torch.Generator | None
               ) -> tuple[list[dict[str, Any]], PruneResult | None, bool]:
        """The frontier so far, the model after the last step within the limits (None before the first), and
        whether the run had finished; the random-number states are put back as they were."""
        from ..keeping import load, read_report

        assert self.folder is not None
        state = torch.load(self.folder / "state.pt", weights_only=True)
        if state.get("format") != "taskprune.within-checkpoint":
            raise ValueError(f"{self.folder / 'state.pt'} is not a prune_within checkpoint")
        saved = state["settings"]
        changed = {k: (saved.get(k), self.settings.get(k)) for k in [*self.settings, *saved]
                   if saved.get(k) != self.settings.get(k)}
        if changed:
            listed = ", ".join(f"{k}={old!r} (now {new!r})" for k, (old, new) in changed.items())
            raise ValueError(f"checkpoint {self.folder} was written with other settings: {listed}; pass the same "
                             f"settings, or another folder to start over")
        torch.set_rng_state(state["rng"])
        if generator is not None and state["scoring_rng"] is not None:
            generator.set_state(state["scoring_rng"])
        best = None
        if state["model_file"] is not None:
            path = self.folder / state["model_file"]
            pruned = load(path, copy.deepcopy(model), example_inputs)
            best = PruneResult(model=pruned, report=read_report(path), history=state["history"],
                               channel_map=state["channel_map"], example_inputs=example_inputs)
        return state["frontier"], best, state["finished"]


def plain_option(value: Any) -> Any:
    """A prune option as a checkpoint stores it (plain values as they are, names as lists, weights as dicts);
    `repr` for anything else."""
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in value.items()):
        return dict(sorted(value.items()))
    return repr(value)


def criterion_options(importance: Any) -> dict[str, Any]:
    """The criterion's plain settings (conflict_taylor's `lam`, `measure`, `task_weights`, ...: `settings()`) as a
    checkpoint records them; a name stands for the criterion with its defaults. Settings that are not plain values
    (a torch-pruning importance's layer types, say) are left out."""
    from ..criteria import get_criterion

    options = {k: plain_option(v) for k, v in sorted(get_criterion(importance).settings().items())}
    return {f"importance.{k}": v for k, v in options.items() if not (isinstance(v, str) and v.startswith("<"))}
