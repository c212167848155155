"""Why do the published networks lose their dense masks after a small prune? A diagnosis of real_weights.py.

For each network, criterion, share of parameters and channel multiple, prune exactly as `real_weights.py` does
(same frames, crops and scoring batches, via its `Bench`) and report, before any recovery:

- agreement with the dense masks on the two held-back frames;
- a surgery check: the DENSE network with the removed channels zeroed (forward hooks on every layer whose output
  channels were removed, conv / BatchNorm / PReLU / linear) must give the pruned network's outputs; the largest
  absolute difference of the logits is recorded (a wrong cut, BatchNorm statistics or mode would show here);
- which layers were cut and how wide they were;
- `sensitivity`: an oracle criterion that scores every channel by the agreement lost, on the four scoring frames
  (not the reported ones), when that channel alone is zeroed in the dense network;
- torch-pruning (tp_baseline, global isomorphic Taylor with a 0.8 cap as real_weights uses, and in steps of 1).

Every cell is one JSON file in benchmarks/results/real_diagnose_runs/, skipped when done with the same settings;
`real_diagnose_report.py` writes benchmarks/results/real_diagnose.md and .json.

    OMP_NUM_THREADS=1 python benchmarks/real_diagnose.py && python benchmarks/real_diagnose_report.py
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, done, machine, write_json  # noqa: E402
from real_nets import SPLIT, TASK_NAMES, agreement, masks  # noqa: E402
from real_weights import Bench  # noqa: E402

import taskprune  # noqa: E402

RUNS = RESULTS / "real_diagnose_runs"


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default="twinlitenetplus_nano")
    parser.add_argument("--ratios", default="0.01,0.02,0.05,0.1,0.2,0.3")
    parser.add_argument("--methods", default="magnitude,taylor,task_taylor,sensitivity")
    parser.add_argument("--round-to", default="auto,1", help="taskprune channel multiples to try")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--crop", default="128x256", help="scoring crop, as real_weights.py")
    parser.add_argument("--score-batches", type=int, default=4)
    parser.add_argument("--tp-iterations", type=int, default=10,
                        help="bisection steps of torch-pruning's ratio (0: its channel ratio = the share asked)")
    parser.add_argument("--recalibrate", action="store_true",
                        help="also re-estimate BatchNorm statistics on the scoring crops (runs named *_recal)")
    parser.add_argument("--sensitivity-size", default="192x320", help="frame size the oracle measures at")
    return parser.parse_args(argv)


def output_dim(module: nn.Module) -> int | None:
    """The dimension of `module`'s output that its removed output channels run along, or None."""
    if isinstance(module, nn.Linear):
        return -1
    if isinstance(module, (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.PReLU)):
        return 1
    return None


def width(module: nn.Module) -> int | None:
    for attr in ("out_channels", "num_features", "out_features", "num_parameters"):
        if hasattr(module, attr):
            return int(getattr(module, attr))
    return None


def zero_channels(model: nn.Module, removed: dict[str, list[int]]) -> list[Any]:
    """Forward hooks that zero these output channels of these layers of `model`; the caller removes them."""
    modules, hooks = dict(model.named_modules()), []
    for name, channels in removed.items():
        module = modules[name]
        dim = output_dim(module)
        if dim is None or not channels:
            continue
        keep = torch.ones(width(module) or 0)
        keep[list(channels)] = 0

        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, keep: torch.Tensor = keep, dim: int = dim) -> Any:
            shape = [1] * out.dim()
            shape[dim] = -1
            return out * keep.view(shape)

        hooks.append(module.register_forward_hook(hook))
    return hooks


def removed_channels(model: nn.Module, channel_map: dict[str, list[int]]) -> dict[str, list[int]]:
    """{layer: original output channels removed} from a channel map (kept original indices per layer)."""
    modules = dict(model.named_modules())
    out = {}
    for name, kept in channel_map.items():
        total = width(modules[name]) if name in modules else None
        if total is not None and len(kept) < total:
            out[name] = sorted(set(range(total)) - set(kept))
    return out


@torch.no_grad()
def surgery_check(dense: nn.Module, pruned: nn.Module, images: torch.Tensor, removed: dict[str, list[int]]
                  ) -> dict[str, Any]:
    """Largest |pruned - masked dense| logit, and the masked dense network's agreement with the dense masks."""
    diffs, reference = [], masks(dense, images)
    hooks = zero_channels(dense, removed)
    try:
        masked_masks = masks(dense, images)
        for image in images:
            diffs += [float((a - b).abs().max()) for a, b in zip(pruned(image[None]), dense(image[None]), strict=True)]
    finally:
        for hook in hooks:
            hook.remove()
    found = {}
    for task in TASK_NAMES:
        a, b = masked_masks[task] == 1, reference[task] == 1
        union = int((a | b).sum())
        found[task] = 100.0 * int((a & b).sum()) / union if union else 100.0
    return {"max_abs_diff": max(diffs), "masked_agreement": found}


class Sensitivity:
    """Oracle criterion: a channel's score is the agreement (mean over tasks, %) the dense network loses on
    `images` when that channel alone is zeroed. Scores are in one unit across groups (`normalised`)."""

    name = "sensitivity"
    needs: frozenset[str] = frozenset()
    normalised = True

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.cache: dict[tuple[str, int], torch.Tensor] = {}

    def score(self, context: Any) -> list[torch.Tensor]:
        reference = masks(context.model, self.images)
        return [self._group(context.model, group, reference) for group in context.groups]

    def _group(self, model: nn.Module, group: Any, reference: dict[str, torch.Tensor]) -> torch.Tensor:
        key = (group.root, group.channels)
        if key not in self.cache:
            lost = torch.zeros(group.channels)
            if group.prunable and group.channels > 1:
                for channel in range(group.channels):
                    hooks = zero_channels(model, self._slices_of(model, group, channel))
                    try:
                        lost[channel] = 100.0 - sum(agreement(model, self.images, reference).values()) / 2
                    finally:
                        for hook in hooks:
                            hook.remove()
            self.cache[key] = lost + 1e-6 * torch.arange(group.channels)  # stable ties
        return self.cache[key]

    @staticmethod
    def _slices_of(model: nn.Module, group: Any, channel: int) -> dict[str, list[int]]:
        modules, out = dict(model.named_modules()), {}
        for piece in group.slices:
            name, _, attr = piece.param.rpartition(".")
            module = modules.get(name)
            if module is None or attr != "weight" or output_dim(module) is None:
                continue
            transposed = isinstance(module, nn.modules.conv._ConvNd) and module.transposed
            depthwise = isinstance(module, nn.modules.conv._ConvNd) and module.groups == module.out_channels > 1
            is_out_dim = piece.dim == (0 if depthwise or not transposed else 1)
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not is_out_dim:
                continue  # an input-side slice: zeroing the producer already zeroes it
            local = piece.local[piece.root == channel].tolist()
            if local:
                out.setdefault(name, []).extend(int(i) for i in local)
        return out


def prune(bench: Bench, method: str, ratio: float, round_to: str, oracle: Sensitivity | None
          ) -> tuple[nn.Module, dict[str, list[int]], dict[str, Any]]:
    multiple: Any = "auto" if round_to == "auto" else (None if round_to == "1" else int(round_to))
    if method == "torch_pruning":
        from tp_baseline import (
            SETUPS,
            TorchPruningSetup,
            output_layers,
            prune_like_torch_pruning,
            prune_with_setup,
        )

        base = SETUPS["tp_global_iso"]
        setup = base if round_to == "auto" else TorchPruningSetup(isomorphic=True, max_pruning_ratio=0.8,
                                                                  round_to=multiple)
        batches = bench.train[:bench.args.score_batches]
        example = batches[0]["image"][:1]  # a crop: traced at the full frame it took over 4.5 GB here
        if bench.args.tp_iterations:  # bisect its channel ratio to this share of the parameters
            model, channel_map = prune_like_torch_pruning(bench.model, example, bench.tasks, batches,
                                                          (1 - ratio) * bench.params,
                                                          iterations=bench.args.tp_iterations, setup=setup)
        else:  # its own pruning_ratio (a share of channels) set to `ratio`, one prune
            model, channel_map = prune_with_setup(bench.model, example, ratio, setup,
                                                  set(output_layers(bench.model, example)), bench.tasks,
                                                  batches)
        return model, channel_map, {"setup": "tp_global_iso", "tp_round_to": setup.round_to,
                                     "tp_iterations": bench.args.tp_iterations}
    importance: Any = oracle if method == "sensitivity" else method
    options = {"tasks": bench.tasks, "data": bench.train, "num_batches": bench.args.score_batches}
    result = taskprune.prune(bench.model, bench.example, ratio=ratio, importance=importance, round_to=multiple,
                             progress=False, **(options if method in ("taylor", "task_taylor") else {}))
    return result.model, result.channel_map, {"reached": result.report.reached,
                                              "round_to_used": result.report.round_to}


@torch.no_grad()
def recalibrated(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> nn.Module:
    """A copy of `model` whose BatchNorm statistics are re-estimated (a plain average) on `batches`, no training:
    whether the loss is a shift of the statistics downstream of the cut rather than lost information."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None
            module.train()
    for batch in batches:
        model(batch["image"])
    return model.eval()


def cell(bench: Bench, method: str, ratio: float, round_to: str, oracle: Sensitivity | None,
         recalibrate: bool = False) -> dict[str, Any]:
    before = {k: v.clone() for k, v in bench.model.state_dict().items()}
    start = time.process_time()
    model, channel_map, extra = prune(bench, method, ratio, round_to, oracle)
    seconds = time.process_time() - start
    removed = removed_channels(bench.model, channel_map)
    modules = dict(bench.model.named_modules())
    cut = {n: [width(modules[n]), width(modules[n]) - len(r)] for n, r in removed.items()  # type: ignore[operator]
           if isinstance(modules[n], (nn.modules.conv._ConvNd, nn.Linear))}
    return {"network": bench.name, "method": method, "ratio": ratio, "round_to": round_to, **extra,
            "params_reduction": 1 - sum(p.numel() for p in model.parameters()) / bench.params,
            "pruned": agreement(model, bench.test_images, bench.test_masks),
            "surgery": surgery_check(bench.model, model, bench.test_images, removed),
            "eval_mode": not any(m.training for m in model.modules()),
            "dense_untouched": all(torch.equal(v, bench.model.state_dict()[k]) for k, v in before.items()),
            "cut_layers": cut, "prune_cpu_seconds": seconds,
            **({"recalibrated": agreement(recalibrated(model, bench.train[:bench.args.score_batches]),
                                          bench.test_images, bench.test_masks)} if recalibrate else {})}


def oracle_for(bench: Bench, size: str) -> Sensitivity:
    height, width_ = (int(v) for v in size.split("x"))
    images = F.interpolate(bench.images[list(SPLIT["train"])], size=(height, width_), mode="bilinear",
                           align_corners=False)
    return Sensitivity(images)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(1)
    settings = {"batch_size": args.batch_size, "crop": args.crop, "score_batches": args.score_batches,
                "sensitivity_size": args.sensitivity_size, "recalibrate": args.recalibrate}
    for name in args.networks.split(","):
        bench = Bench(name, argparse.Namespace(steps=0, batch_size=args.batch_size, crop=args.crop,
                                               score_batches=args.score_batches, tp_iterations=args.tp_iterations))
        oracle = None
        if args.recalibrate:  # the control: the dense network itself, its statistics re-estimated the same way
            control = agreement(recalibrated(bench.model, bench.train[:args.score_batches]), bench.test_images,
                                bench.test_masks)
            write_json(RUNS / f"{name}_dense_recal.json", {"settings": settings, "machine": machine(),
                                                            "control": control})
        for method in args.methods.split(","):
            for round_to in args.round_to.split(","):
                for ratio in (float(r) for r in args.ratios.split(",")):
                    suffix = "_recal" if args.recalibrate else ""
                    path = RUNS / f"{name}_{method}_r{round_to}_{ratio:g}{suffix}.json"
                    if done(path, settings):
                        continue
                    if method == "sensitivity" and oracle is None:
                        oracle = oracle_for(bench, args.sensitivity_size)
                    try:
                        record = cell(bench, method, ratio, round_to, oracle, args.recalibrate)
                    except Exception as error:  # an unreachable budget is a finding, not a crash
                        record = {"network": name, "method": method, "ratio": ratio, "round_to": round_to,
                                  "error": f"{type(error).__name__}: {error}"}
                    write_json(path, {"settings": settings, "machine": machine(), "record": record})
                    print(f"{path.stem}: {record.get('pruned')} surgery {record.get('surgery')}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
