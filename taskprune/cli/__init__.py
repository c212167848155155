"""The `taskprune` command: the demo, and inspect / prune / report on a model of your own.

    taskprune demo --quick
    taskprune inspect mymodels:build --input-shape 1,3,384,640
    taskprune prune mymodels:build --input-shape 1,3,384,640 --ratio 0.3 --out pruned.pt
    taskprune report pruned.pt --json

MODULE:FACTORY names a function called with no arguments that returns an `nn.Module` (or a tuple
`(model, example_inputs)`); the current directory is on the import path, as with `python -m`. Bad input prints one
line and exits with status 2 (a failure while pruning: 1); `--debug` also shows the traceback, with the same status.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__

__all__ = ["main"]


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0 ok, 1 the work failed, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        args.run(args)
    except (UsageError, FileNotFoundError, ImportError, ValueError, TypeError) as error:
        _explain(args, f"error: {error}")
        return 2
    except Exception as error:
        _explain(args, f"failed: {type(error).__name__}: {error}")
        return 1
    return 0


def _explain(args: argparse.Namespace, line: str) -> None:
    """The one line of a failure on stderr, after its traceback with --debug (the exit status stays the same)."""
    if args.debug:
        traceback.print_exc()
    print(f"taskprune {args.command}: {line}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taskprune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"taskprune {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands as commands_impl

    for name, (function, help_text, example, add_arguments) in commands_impl.COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=f"{help_text}\n\nexample:\n  {example}",
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(sub)
        sub.add_argument("--debug", action="store_true", help="show the traceback of an error")
        sub.set_defaults(run=function)
    return parser


def load_factory(spec: str) -> Any:
    """`module:function` -> what the function returns (called with no arguments), the current directory first on
    the import path."""
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise UsageError(f"expected MODULE:FACTORY (e.g. mymodels:build), got {spec!r}")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise UsageError(f"cannot import module {module_name!r}: {type(error).__name__}: {error}") from error
    factory = getattr(module, function_name, None)
    if not callable(factory):
        available = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise UsageError(f"module {module_name!r} has no function {function_name!r}; callables in it: "
                         f"{', '.join(available[:12]) or 'none'}")
    try:
        return factory()
    except Exception as error:
        raise UsageError(f"{spec}() raised {type(error).__name__}: {error}") from error


def parse_shape(text: str) -> tuple[int, ...]:
    """"1,3,384,640" -> (1, 3, 384, 640)."""
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--input-shape must be comma-separated positive integers like 1,3,384,640, got {text!r}"
                         ) from None
    if not shape or any(side < 1 for side in shape):
        raise UsageError(f"--input-shape must be comma-separated positive integers like 1,3,384,640, got {text!r}")
    return shape


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2))


