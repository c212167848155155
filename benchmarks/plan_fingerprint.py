"""The plans taskprune makes, as a fingerprint to compare across a refactoring: behaviour must not move.

Prunes every tiny and zoo test model and DrivingNet-s with fixed seeds, for several criteria, targets and channel
multiples, with the device's channel multiple injected (so no timing decides a plan), and writes {case: the kept
channel indices per layer, or the error} as JSON. target="latency" is left out: its plans are corrected by
end-to-end measurements, which differ from run to run even with an injected table.

    python benchmarks/plan_fingerprint.py --out /tmp/before.json
    ... change the code ...
    python benchmarks/plan_fingerprint.py --out /tmp/after.json --compare /tmp/before.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

import taskprune
from taskprune import latency
from taskprune.tasks import Tasks, flatten_outputs


def factories() -> dict[str, object]:
    """Every test model factory by function name (works with the registries before and after the redesign)."""
    from taskprune import testing

    if hasattr(testing, "list_test_models"):
        found = {name: testing.get_test_model(name) for kind in ("tiny", "zoo")
                 for name in testing.list_test_models(kind=kind)}
    else:
        found = {**testing.TINY_MODELS, **testing.ZOO_MODELS}
    named = {getattr(f, "__name__", key): f for key, f in found.items()}
    return {name: named[name] for name in sorted(named)}


def energy(task_output, batch) -> torch.Tensor:
    return torch.stack([t.float().pow(2).mean() for t in flatten_outputs(task_output)]).sum()


CASES = [  # (label, prune keyword arguments); gradient criteria get tasks with an energy loss and 3 batches
    ("magnitude-params-0.3-none", dict(ratio=0.3, round_to=None)),
    ("magnitude-params-0.5-auto", dict(ratio=0.5, round_to="auto")),
    ("random-params-0.3-4", dict(ratio=0.3, importance="random", round_to=4, seed=3)),
    ("magnitude-macs-0.3-none", dict(ratio=0.3, target="macs", round_to=None)),
    ("magnitude-channels-0.3-none", dict(ratio=0.3, target="channels", round_to=None)),
    ("taylor-params-0.3-none", dict(ratio=0.3, importance="taylor", round_to=None)),
    ("conflict_taylor-params-0.4-none", dict(ratio=0.4, importance="conflict_taylor", round_to=None)),
    ("task_taylor-params-0.4-auto", dict(ratio=0.4, importance="task_taylor", round_to="auto")),
]


def run_case(model: torch.nn.Module, x: object, options: dict) -> object:
    options = dict(options)
    if options.get("importance", "magnitude") not in ("magnitude", "random"):
        if not isinstance(x, torch.Tensor):  # the random data below is one tensor per batch
            return "skipped: non-tensor inputs"
        with torch.no_grad():
            base = Tasks.from_output(model(x))
        generator = torch.Generator().manual_seed(0)
        shape = x.shape
        options["tasks"] = Tasks(outputs=dict(base.outputs), losses=dict.fromkeys(base.outputs, energy))
        options["data"] = [torch.randn(shape, generator=generator) for _ in range(3)]
    try:
        result = taskprune.prune(model, x, progress=False, **options)
    except (ValueError, RuntimeError, TypeError) as error:
        return f"{type(error).__name__}: {error}"
    return {"reached": round(result.report.reached, 6), "channel_map": result.channel_map}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = factories()
    from taskprune import driving

    fingerprint: dict[str, object] = {}
    for name, factory in [*models.items(), ("driving_s", lambda: (driving.DrivingNet("s").eval(),
                                                                   torch.zeros(1, 3, 64, 96)))]:
        for label, options in CASES:
            torch.manual_seed(0)
            model, x = factory()
            with latency.override(alignment=8):
                fingerprint[f"{name}/{label}"] = run_case(model, x, options)
        print(name, flush=True)
    args.out.write_text(json.dumps(fingerprint, indent=1, sort_keys=True))
    if args.compare is not None:
        before = json.loads(args.compare.read_text())
        moved = [case for case in sorted(set(before) | set(fingerprint)) if before.get(case) != fingerprint.get(case)]
        print(f"{len(fingerprint)} cases, {len(moved)} differ" + "".join(f"\n  {case}" for case in moved))
        sys.exit(1 if moved else 0)


if __name__ == "__main__":
    main()
