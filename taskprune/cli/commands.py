"""The subcommands of `taskprune`: what each does, its example, and its arguments."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import UsageError, load_factory, parse_shape, print_json

__all__ = ["COMMANDS"]


# -- demo ---------------------------------------------------------------------------------------------------------
def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a smaller budget: 68 s on 2 idle cores (median of 3; the full demo 5.1 min); the demo "
                             "prints its own time at the end")
    parser.add_argument("--size", choices=("n", "s", "m"), default="s",
                        help="DrivingNet size (s is shipped; n and m are trained and cached on first use)")
    parser.add_argument("--ratio", type=float, default=0.4, help="fraction of the target to remove (default 0.4)")
    parser.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default 200, quick 30)")
    parser.add_argument("--target", choices=("params", "latency"), default="params",
                        help="remove a fraction of the parameters, or of the latency measured on this CPU")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or 'bdd100k:PATH' (YOLOP's layout)")
    parser.add_argument("--image-size", default="192,320", help="H,W, multiples of 32 (default 192,320)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="the run folder (default runs/demo)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-per-task", action="store_true",
                        help="skip the per-task part (extract for detection + drivable area, prune_within)")


def demo(args: argparse.Namespace) -> None:
    from ..driving.demo import DemoConfig, run_demo

    if not 0 < args.ratio < 1:
        raise UsageError(f"--ratio must be between 0 and 1, got {args.ratio}")
    options: dict[str, Any] = dict(size=args.size, ratio=args.ratio, target=args.target, data=args.data,
                                   image_size=parse_shape(args.image_size), out=args.out, threads=args.threads,
                                   per_task=not args.no_per_task)
    if args.steps is not None:
        options["steps"] = args.steps
    run_demo(DemoConfig.quick(**options) if args.quick else DemoConfig(**options))


# -- inspect ------------------------------------------------------------------------------------------------------
def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("factory", metavar="MODULE:FACTORY",
                        help="a function of no arguments returning an nn.Module (or (model, example_inputs))")
    parser.add_argument("--input-shape", default=None,
                        help="shape of one example input tensor, e.g. 1,3,384,640 (not needed when the factory "
                             "returns example inputs)")


def _model_and_inputs(args: argparse.Namespace) -> tuple[torch.nn.Module, Any]:
    built = load_factory(args.factory)
    example = None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        built, example = built
    if not isinstance(built, torch.nn.Module):
        raise UsageError(f"{args.factory}() returned {type(built).__name__}, not an nn.Module")
    if args.input_shape is not None:
        example = _example(built.eval(), args.input_shape)
    if example is None:
        raise UsageError("--input-shape is needed (e.g. --input-shape 1,3,384,640)")
    return built.eval(), example


_CONVOLUTION_AXES = {torch.nn.Conv1d: "N,C,L", torch.nn.Conv2d: "N,C,H,W", torch.nn.Conv3d: "N,C,D,H,W"}


def _example(model: torch.nn.Module, text: str) -> torch.Tensor:
    """A random input of shape --input-shape, tried on the model once: a shape that does not fit is bad input
    (status 2), and one whose number of dimensions is not what the first convolution to run takes is refused before
    that convolution runs (torch would read a 3-D input as one unbatched image and complain about channels)."""
    from torch.nn.modules.module import register_module_forward_pre_hook

    from ..safety import run_model

    example = torch.randn(parse_shape(text))
    names = {module: name for name, module in model.named_modules()}
    checked: list[torch.nn.Module] = []

    def first_convolution(module: torch.nn.Module, inputs: Any) -> None:
        axes = next((a for kind, a in _CONVOLUTION_AXES.items() if isinstance(module, kind)), None)
        if axes is None or checked or module not in names:
            return
        checked.append(module)
        rank = len(axes.split(","))
        given = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if given is not None and given.dim() != rank and given.dim() == example.dim():
            raise UsageError(f"--input-shape {text} has {example.dim()} dimensions, but the model's first "
                             f"convolution, {names[module]!r} ({type(module).__name__}, {module.in_channels} input "
                             f"channels), takes {rank}: {axes}")

    hook = register_module_forward_pre_hook(first_convolution)
    try:
        run_model(model, example, f"the model on --input-shape {text}")
    except RuntimeError as error:
        if isinstance(error.__cause__, UsageError):
            raise error.__cause__ from None
        raise UsageError(str(error)) from error
    finally:
        hook.remove()
    return example


def _inspect_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the channel groups to this PNG")


def inspect(args: argparse.Namespace) -> None:
    from ..reporting import inspect as inspect_model

    model, example = _model_and_inputs(args)
    found = inspect_model(model, example)
    if args.json:
        print_json(found.to_dict())
    else:
        from rich.console import Console

        Console().print(found)
    if args.plot is not None:
        from ..reporting.plots import plot_channels

        plot_channels(found.as_report(), args.plot, title=f"{args.factory}: channel groups (nothing pruned)")


# -- prune --------------------------------------------------------------------------------------------------------
def _prune_arguments(parser: argparse.ArgumentParser) -> None:
    _model_arguments(parser)
    parser.add_argument("--ratio", type=float, required=True, help="fraction of the target to remove, 0 < r < 1")
    parser.add_argument("--target", default="params", help="params, macs, channels or latency (default params)")
    parser.add_argument("--importance", default="magnitude",
                        help="criterion name; gradient criteria need --tasks (default magnitude)")
    parser.add_argument("--round-to", default="auto", help="'auto', 'none' or a channel multiple (default auto)")
    parser.add_argument("--tasks", default=None, metavar="MODULE:FUNCTION",
                        help="a function of no arguments returning (taskprune.Tasks, batches): enables the "
                             "task-aware criteria (taylor, task_taylor, conflict_taylor)")
    parser.add_argument("--out", type=Path, required=True, help="the taskprune file to write (e.g. pruned.pt)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def prune(args: argparse.Namespace) -> None:
    from ..criteria import get_criterion
    from ..keeping import save
    from ..prune import prune as prune_model

    if get_criterion(args.importance).needs and args.tasks is None:  # an unknown name lists the valid ones
        raise UsageError(f"--importance {args.importance} ranks channels by the tasks' gradients, so it needs "
                         "--tasks MODULE:FUNCTION (a function returning (taskprune.Tasks, batches)); "
                         "--importance magnitude needs no data")
    model, example = _model_and_inputs(args)
    round_to: Any = {"auto": "auto", "none": None}.get(args.round_to.lower(), args.round_to)
    if isinstance(round_to, str) and round_to != "auto":
        if not round_to.isdigit():
            raise UsageError(f"--round-to must be 'auto', 'none' or a positive integer, got {args.round_to!r}")
        round_to = int(round_to)
    tasks = data = None
    if args.tasks is not None:
        hook = load_factory(args.tasks)
        if not (isinstance(hook, tuple) and len(hook) == 2):
            raise UsageError(f"{args.tasks}() must return (taskprune.Tasks, batches), got {type(hook).__name__}")
        tasks, data = hook
    result = prune_model(model, example, ratio=args.ratio, target=args.target, importance=args.importance,
                         tasks=tasks, data=data, round_to=round_to, progress=not args.json)
    save(result, args.out)
    if args.json:
        print_json(result.report.to_dict())
    else:
        print(result.report)
        print(f"saved {args.out} (load it with taskprune.load({str(args.out)!r}, fresh_model))")


# -- report -------------------------------------------------------------------------------------------------------
def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a file written by taskprune.save or `taskprune prune`")
    parser.add_argument("--json", action="store_true", help="print PruneReport.to_json()")
    parser.add_argument("--plot", type=Path, default=None, help="also draw the channels kept to this PNG")


def report(args: argparse.Namespace) -> None:
    from ..keeping import read_report

    found = read_report(args.file)
    if args.json:
        print(found.to_json())
    else:
        print(found)
    if args.plot is not None:
        from ..reporting.plots import plot_channels

        plot_channels(found, args.plot, title=f"{args.file.name}: channels kept per group")


Command = tuple[Callable[[argparse.Namespace], None], str, str, Callable[[argparse.ArgumentParser], None]]
COMMANDS: dict[str, Command] = {
    "demo": (demo, "prune the reference driving model, recover it with distillation, and compare",
             "taskprune demo --quick", _demo_arguments),
    "inspect": (inspect, "show a model's channel groups, the tasks each serves and the protected outputs",
                "taskprune inspect mymodels:build --input-shape 1,3,384,640 --plot groups.png",
                _inspect_arguments),
    "prune": (prune, "prune a model of your own and save it as a taskprune file",
              "taskprune prune mymodels:build --input-shape 1,3,384,640 --ratio 0.3 --out pruned.pt",
              _prune_arguments),
    "report": (report, "show the report stored in a saved taskprune file, without the model",
               "taskprune report pruned.pt --json", _report_arguments),
}
