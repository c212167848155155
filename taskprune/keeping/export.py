"""ONNX export with an ONNX Runtime parity check (extra `onnx`: `pip install taskprune[onnx]`)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._runtime import preserved_modes
from ..tasks import call_model, flatten_outputs, output_leaves

__all__ = ["export_onnx"]


def export_onnx(model: nn.Module, example_inputs: Any, path: str | os.PathLike[str], check: bool = True, *,
                opset_version: int | None = None, atol: float = 1e-4, dynamic_batch: bool = False,
                ) -> dict[str, float]:
    """Export `model` (in eval mode) to ONNX and, with `check`, compare ONNX Runtime's outputs to PyTorch's.

    Uses the TorchScript-based exporter (`torch.onnx.export(..., dynamo=False)`), which needs no `onnxscript`.
    Outputs are flattened in taskprune's order (tuple, list, dict, namedtuple and dataclass outputs all work)
    and named by their access path ("det", "aux.1"; "output_0" for position 0); inputs are named "input",
    "input_<i>" or by their dict key.

    Args:
        model: the module to export; its train/eval mode is restored afterwards.
        example_inputs: a tensor, a tuple of positional args or a dict of keyword args; its tensors become
            the graph's inputs.
        path: the `.onnx` file to write.
        check: run ONNX Runtime on `example_inputs` and compare every output with PyTorch's.
        opset_version: ONNX opset; torch's default when None.
        atol: largest absolute difference accepted per output element.
        dynamic_batch: make dimension 0 of every input and output a named dynamic axis ("batch"), so the file
            runs at any batch size; `check` then also compares at one more sample than `example_inputs` has.

    Returns:
        ONNX output name -> largest absolute difference between ONNX Runtime and PyTorch; empty when
        `check=False`.

    Raises:
        ImportError: `onnx` or `onnxruntime` is missing (`pip install taskprune[onnx]`).
        RuntimeError: an output's shape differs or it differs by more than `atol`; the message names the
            output and the largest difference.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _require("onnx")
    flat = _FlatModel(model, example_inputs)
    with preserved_modes(model, eval=True):
        with torch.no_grad():
            reference = output_leaves(call_model(model, example_inputs))
        with warnings.catch_warnings():
            # the TorchScript exporter is chosen on purpose (the dynamo one needs onnxscript): hide its notice
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
            warnings.filterwarnings("ignore", message="The feature will be removed.*")
            names = [_onnx_name(key) for key, _ in reference]
            dynamic_axes = {n: {0: "batch"} for n in flat.input_names + names} if dynamic_batch else None
            torch.onnx.export(flat, flat.args, os.fspath(path), dynamo=False, opset_version=opset_version,
                              input_names=flat.input_names, output_names=names, dynamic_axes=dynamic_axes)
    if not check:
        return {}
    differences = _compare_with_onnxruntime(os.fspath(path), flat, flat.args, reference, atol)
    if dynamic_batch:
        # one more sample than the example: a file whose batch size is baked in fails here
        larger = tuple(torch.cat([t, t[:1]]) for t in flat.args)
        with preserved_modes(model, eval=True), torch.no_grad():
            expected = output_leaves(flat.model_output(larger))
        for key, value in _compare_with_onnxruntime(os.fspath(path), flat, larger, expected, atol).items():
            differences[key] = max(differences[key], value)
    return differences


def _require(package: str) -> Any:
    try:
        return __import__(package)
    except ImportError as error:
        raise ImportError(f"export_onnx needs the {package!r} package: pip install taskprune[onnx]"
                          ) from error


def _onnx_name(key: str) -> str:
    return f"output_{key}" if key[:1].isdigit() else key  # ONNX value names may not be bare numbers


class _FlatModel(nn.Module):
    """`model` called with positional tensors only and returning a flat tuple, the form ONNX export takes."""

    def __init__(self, model: nn.Module, example_inputs: Any) -> None:
        super().__init__()
        self.model = model
        self.keyword = isinstance(example_inputs, Mapping)
        if isinstance(example_inputs, torch.Tensor):
            self.slots = [("input", example_inputs)]
        elif isinstance(example_inputs, Mapping):
            self.slots = [(str(k), v) for k, v in example_inputs.items()]
        elif isinstance(example_inputs, (tuple, list)):
            self.slots = [(f"input_{i}", v) for i, v in enumerate(example_inputs)]
        else:
            raise TypeError("example_inputs must be a tensor, a tuple/list of args or a dict of kwargs, "
                            f"got {type(example_inputs).__name__}")
        # tensors become graph inputs; anything else stays a constant of the exported graph
        self.input_names = [name for name, value in self.slots if isinstance(value, torch.Tensor)]
        self.args = tuple(value for value in dict(self.slots).values() if isinstance(value, torch.Tensor))

    def model_output(self, tensors: tuple[torch.Tensor, ...]) -> Any:
        """The wrapped model's own (nested) output for these graph inputs."""
        given = dict(zip(self.input_names, tensors, strict=True))
        values = {name: given.get(name, value) for name, value in self.slots}
        return self.model(**values) if self.keyword else self.model(*values.values())

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(flatten_outputs(self.model_output(tensors)))


def _compare_with_onnxruntime(path: str, flat: _FlatModel, args: tuple[torch.Tensor, ...],
                              reference: list[tuple[str, torch.Tensor]], atol: float) -> dict[str, float]:
    _require("onnx").checker.check_model(path)
    ort = _require("onnxruntime")
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = dict(zip(flat.input_names, args, strict=True))
    wanted = {i.name for i in session.get_inputs()}  # the exporter drops inputs the graph does not use
    try:
        outputs = session.run(None, {k: v.detach().cpu().numpy() for k, v in feeds.items() if k in wanted})
    except Exception as error:  # onnxruntime raises its own exception types
        batch = f" at batch size {args[0].shape[0]}" if args and args[0].dim() else ""
        raise RuntimeError(f"ONNX Runtime cannot run the exported model{batch}: {error}") from error
    if len(outputs) != len(reference):
        raise RuntimeError(f"the ONNX model has {len(outputs)} outputs, PyTorch's {len(reference)}")
    differences: dict[str, float] = {}
    for (leaf, expected), got in zip(reference, outputs, strict=True):
        key = _onnx_name(leaf)
        actual = torch.from_numpy(got)
        if tuple(actual.shape) != tuple(expected.shape):
            raise RuntimeError(f"ONNX output {key!r} has shape {list(actual.shape)}, PyTorch's "
                               f"{list(expected.shape)}")
        difference = (actual.double() - expected.detach().cpu().double()).abs()
        differences[key] = float(difference.max()) if difference.numel() else 0.0
        if not differences[key] <= atol:  # also catches NaN
            raise RuntimeError(f"ONNX Runtime output {key!r} differs from PyTorch's by up to "
                               f"{differences[key]:.3g} (atol={atol:g})")
    return differences
