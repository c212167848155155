"""Checks that a pruned model still answers like the original, and moving a pruned copy into the caller's model."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ._runtime import preserved_modes
from .tasks import call_model, output_leaves

__all__ = ["first_call", "layer_errors", "output_shapes", "run_model", "verify_outputs", "transplant"]


def output_shapes(model_output: Any) -> dict[str, tuple[int, ...]]:
    """Shape of every tensor leaf of an output, keyed by its access path ("0", "det", "aux.1")."""
    return {key: tuple(t.shape) for key, t in output_leaves(model_output)}


def run_model(model: nn.Module, example_inputs: Any, what: str) -> Any:
    """Forward under no_grad; a failure raises RuntimeError naming the innermost layer that was running."""
    with layer_errors(what, model), torch.no_grad():
        return call_model(model, example_inputs)


@contextmanager
def layer_errors(what: str, *models: nn.Module, reference: Any = None) -> Iterator[None]:
    """Run a forward of `models` (e.g. on a user's batch, with or without gradients); an exception raised inside
    their forward raises RuntimeError "{what} fails in layer 'name' (Conv2d, given input [2, 1, 128, 160]): {the
    error}", naming the innermost layer that was running and the shapes it was given. With `reference`, inputs the
    first model is known to take (prune's example_inputs), the message adds the shapes that layer is given on them
    (one more forward, on failure only). An exception raised outside their forward passes unchanged.

    Example:
        >>> with layer_errors(f"batch {index} of data", model):
        ...     output = model(batch["image"])
    """
    running: list[tuple[nn.Module, Any]] = []
    names = {m: n for model in models for n, m in model.named_modules()}  # a whole model is named ""

    def enter(module: nn.Module, inputs: Any) -> None:
        if module in names:
            running.append((module, inputs))

    def leave(module: nn.Module, _inputs: Any, _output: Any) -> None:
        if module in names and running:
            running.pop()

    # two process-wide hooks instead of two per module: registering hundreds of handles cost more than the
    # forward on small models (0.19 s of a 1.3 s prune on the FCOS lookalike)
    hooks = [register_module_forward_pre_hook(enter), register_module_forward_hook(leave)]
    try:
        yield
    except Exception as error:
        if not running:
            raise
        layers = [(module, inputs) for module, inputs in running if names[module]]
        where = ""
        if layers:
            module, inputs = layers[-1]
            expected = _inputs_on(models[0], module, reference) if reference is not None else None
            where = f" in layer {_described(names[module], module, inputs, expected)}"
        raise RuntimeError(f"{what} fails{where}: {type(error).__name__}: {error}") from error
    finally:
        for hook in hooks:
            hook.remove()


def _inputs_on(model: nn.Module, layer: nn.Module, reference: Any) -> Any:
    """The inputs `layer` is given when `model` runs on `reference` (None when it does not run or that fails)."""
    seen: list[Any] = []
    hook = layer.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs) if not seen else None)
    try:
        with torch.no_grad(), preserved_modes(model, eval=True):
            call_model(model, reference)
    except Exception:  # only a hint for the message of another error
        pass
    finally:
        hook.remove()
    return seen[0] if seen else None


def _shapes(inputs: Any) -> str:
    return ", ".join(str(list(t.shape)) for t in (inputs if isinstance(inputs, tuple) else (inputs,))
                     if isinstance(t, torch.Tensor))


def _described(name: str, layer: nn.Module, inputs: Any, expected: Any = None) -> str:
    """'trunk.0' (Conv2d, given input [2, 1, 16, 16], on example_inputs [1, 3, 16, 16]): the layer, its type, the
    shapes of its tensor inputs and, when known, the shapes it is given on the example inputs."""
    details = [type(layer).__name__]
    if _shapes(inputs):
        details.append(f"given input {_shapes(inputs)}")
    if expected is not None and _shapes(expected):
        details.append(f"on example_inputs {_shapes(expected)}")
    return f"{name!r} ({', '.join(details)})"


def first_call(model: nn.Module, example_inputs: Any) -> tuple[Any, Any, str]:
    """Call `model` on `example_inputs` as torch-pruning does: a tuple or list is tried as positional arguments
    first, and a list that fails that way is tried as one argument (torchvision detectors take a list of images).

    Returns:
        (the inputs as `call_model` takes them from now on, the output, how the model was called).

    Raises:
        RuntimeError: every way fails; the message names the innermost layer that was running.
    """
    if isinstance(example_inputs, Mapping):
        how = "model(**example_inputs)"
    elif isinstance(example_inputs, (tuple, list)):
        how = "model(*example_inputs)"
    else:
        how = "model(example_inputs)"
    try:
        return example_inputs, run_model(model, example_inputs, "model(example_inputs)"), how
    except RuntimeError as positional:
        if not isinstance(example_inputs, list):
            raise
        try:
            output = run_model(model, (example_inputs,), "model(example_inputs)")
        except RuntimeError:
            raise RuntimeError(f"{positional} (the list was also tried as one argument, model(example_inputs), "
                               "and that failed too)") from positional
    return (example_inputs,), output, "model(example_inputs): the list as one argument"


def verify_outputs(model: nn.Module, example_inputs: Any, expected: dict[str, tuple[int, ...]],
                   output_layers: dict[str, list[str]]) -> None:
    """Every output keeps its shape and is finite, or RuntimeError names the output and the layers producing it."""
    with preserved_modes(model, eval=True):
        output = run_model(model, example_inputs, "the pruned model")
    shapes = output_shapes(output)
    for key, shape in expected.items():
        got = shapes.get(key)
        layers = ", ".join(output_layers.get(key, [])) or "unknown"
        if got != shape:
            raise RuntimeError(f"pruning changed output {key!r} from {list(shape)} to {got}; "
                               f"it is produced by layer(s) {layers}")
    for key, tensor in output_leaves(output):
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise RuntimeError(f"pruned model output {key!r} has non-finite values; produced by "
                               f"{', '.join(output_layers.get(key, [])) or 'unknown layers'}")


def transplant(source: nn.Module, target: nn.Module) -> None:
    """Make `target` (the caller's module objects) hold the pruned state of `source`, a pruned deep copy of it.

    Module identities stay, so references and hooks the caller holds keep working.
    """
    for pruned, original in zip(source.modules(), target.modules(), strict=True):
        # parameters, buffers and the public size attributes (out_channels, num_features, ...); hooks stay
        state = {k: v for k, v in pruned.__dict__.items() if not k.startswith("_") or k in ("_parameters", "_buffers")}
        original.__dict__.update(state)
