"""Keeping a pruned model: `save` / `load` without pickled code, and `export_onnx` with a parity check.

A taskprune file is a `torch.save` of plain containers only (dict, list, str, int, float, bool, tensors), so
`torch.load(path, weights_only=True)` reads it and loading never runs code from the file. It holds the
pruning history, the pruned weights and metadata; `load` rebuilds the pruned architecture by replaying the
history on a fresh instance of the original model, then loads the weights with strict checking.

Example:
    >>> result = taskprune.prune(model, torch.randn(1, 3, 384, 640), ratio=0.3)
    >>> taskprune.save(result, "pruned.pt", example_inputs=torch.randn(1, 3, 384, 640))
    >>> pruned = taskprune.load("pruned.pt", MyNet())
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import torch
from torch import nn

from ._runtime import atomic_write, preserved_modes
from ._version import __version__
from .export import export_onnx as export_onnx
from .graph import replay_history
from .report import PruneReport

__all__ = ["FORMAT", "FORMAT_VERSION", "export_onnx", "load", "read_metadata", "read_report", "save"]

FORMAT = "taskprune.pruned-model"
"""The value of the `format` entry that marks a taskprune file."""
FORMAT_VERSION = 2
"""Bumped when the file layout changes incompatibly; `load` refuses newer versions. Version 2 adds the `extract`
entry (the tasks `taskprune.extract` kept); files without one are still written as version 1."""

_METADATA_KEYS = ("format", "format_version", "versions", "architecture", "criterion", "target", "ratio",
                  "reached", "params_before", "params_after", "macs_before", "macs_after", "inputs",
                  "channel_map")


def save(result: Any, path: str | os.PathLike[str], *, example_inputs: Any = None) -> None:
    """Write a `PruneResult` to `path`: pruning history, weights and metadata, no pickled code.

    Args:
        result: what `taskprune.prune` returned (`.model`, `.history`, `.report`, `.channel_map`).
        path: the file to write (conventionally `*.pt`).
        example_inputs: the inputs the model was pruned with (tensor or tuple of tensors), recorded by shape
            and dtype so `load` can replay the pruning without them. Defaults to `result.example_inputs` when
            the result carries them. Without either, `load` needs `example_inputs=`.

    Raises:
        TypeError: `result` is not a `PruneResult`-like object.
    """
    if not all(hasattr(result, a) for a in ("history", "report", "channel_map")) \
            or not isinstance(getattr(result, "model", None), nn.Module):
        raise TypeError(f"result must be a taskprune.PruneResult, got {type(result).__name__}")
    if example_inputs is None:
        example_inputs = getattr(result, "example_inputs", None)
    report = result.report
    model = result.model
    extracted = getattr(model, "meta", {}).get("taskprune_extract")  # set by taskprune.extract (EXTRACTED)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": 2 if extracted else 1,
        "versions": {"taskprune": __version__, "torch": str(torch.__version__),
                     "torch_pruning": _package_version("torch-pruning")},
        "architecture": extracted["architecture"] if extracted else f"{type(model).__module__}."
                                                                        f"{type(model).__qualname__}",
        "criterion": str(report.criterion), "target": str(report.target),
        "ratio": float(report.ratio), "reached": float(report.reached),
        "params_before": int(report.params_before), "params_after": int(report.params_after),
        "macs_before": int(report.macs_before), "macs_after": int(report.macs_after),
        "inputs": _input_spec(example_inputs),
        "channel_map": {str(k): [int(i) for i in v] for k, v in result.channel_map.items()},
        "history": [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in result.history],
        "report": json.loads(report.to_json()) if hasattr(report, "to_json") else None,
        **({"extract": dict(extracted)} if extracted else {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    atomic_write(path, lambda partial: torch.save(payload, partial))  # never a half-written file


def read_metadata(path: str | os.PathLike[str], *, channel_map: bool = False) -> dict[str, Any]:
    """What a taskprune file records besides the weights and the history: versions, architecture, budget,
    inputs, and per pruned layer the number of channels it keeps (`channels_kept`).

    Args:
        path: a file written by `taskprune.save`.
        channel_map: also return the full `channel_map` (every kept channel index of every layer; long).

    Raises:
        ValueError: `path` is not a taskprune file (or one written by a newer taskprune).
    """
    payload = _read(path)
    metadata = {key: payload[key] for key in _METADATA_KEYS if key != "channel_map"}
    metadata["channels_kept"] = {name: len(kept) for name, kept in payload["channel_map"].items()}
    if channel_map:
        metadata["channel_map"] = payload["channel_map"]
    return metadata


def read_report(path: str | os.PathLike[str]) -> PruneReport:
    """The `PruneReport` stored in a taskprune file, without building the model. Files written before the report
    was stored give one with the sizes and budget only (no per-group rows).

    Raises:
        ValueError: `path` is not a taskprune file.
    """
    payload = _read(path)
    if isinstance(payload.get("report"), dict):
        return PruneReport.from_dict(payload["report"])
    return PruneReport(**{key: payload[key] for key in ("criterion", "target", "ratio", "reached", "params_before",
                                                        "params_after", "macs_before", "macs_after")},
                       warnings=["this file predates stored reports: per-group rows are not available"])


def load(path: str | os.PathLike[str], fresh_model: nn.Module, example_inputs: Any = None, *,
         tasks: Any = None) -> nn.Module:
    """Rebuild a saved pruned model: replay the pruning on `fresh_model`, then load the weights strictly.

    `fresh_model` is pruned in place and returned. Mismatches found before any change (a layer or weight the
    fresh model lacks) leave it untouched; after a failed replay it is partly pruned and should be discarded.
    A file of an extracted model (`taskprune.extract`) first extracts the same tasks from `fresh_model` and
    returns that new graph module (its layers are `fresh_model`'s).

    Args:
        path: a file written by `taskprune.save`.
        fresh_model: a new, unpruned instance of the architecture that was pruned.
        example_inputs: inputs to trace `fresh_model` with. By default zero tensors of the recorded shapes and
            dtypes; required when the model was pruned with dict (keyword) inputs or none were recorded.
        tasks: for an extracted model whose tasks do not select the output by key: the same `Tasks` (their
            output selectors are code, which the file does not hold).

    Returns:
        `fresh_model`, pruned and holding the saved weights.

    Raises:
        TypeError: `fresh_model` is not an `nn.Module`.
        ValueError: `path` is not a taskprune file, it comes from another architecture (the message names the
            first mismatching layer or weight), or example inputs are needed and missing.

    Example:
        >>> pruned = taskprune.load("pruned.pt", DrivingNet(size="s")).eval()
    """
    if not isinstance(fresh_model, nn.Module):
        raise TypeError(f"fresh_model must be a torch.nn.Module, got {type(fresh_model).__name__}")
    payload = _read(path)
    where = f"{os.fspath(path)!r} (saved from {payload['architecture']})"
    if example_inputs is None:
        device = next(fresh_model.parameters(), torch.zeros(0)).device
        example_inputs = _zeros_like_spec(payload["inputs"], device, where)
    saved: dict[str, torch.Tensor] = payload["state_dict"]
    if "extract" in payload:
        fresh_model = _extract_again(fresh_model, example_inputs, payload["extract"], tasks, where)
    _check_layers(fresh_model, payload["history"], saved, where)
    # tracing must neither update nor need batch statistics (BatchNorm on a batch of one)
    with preserved_modes(fresh_model, eval=True):
        try:
            replay_history(fresh_model, example_inputs, payload["history"])
        except Exception as error:
            raise ValueError(f"replaying the pruning of {where} on {type(fresh_model).__name__} failed: "
                             f"{type(error).__name__}: {error}; is it the same architecture, unpruned?"
                             ) from error
    _check_shapes(fresh_model, saved, where)
    fresh_model.load_state_dict(saved, strict=True)
    return fresh_model


def _extract_again(fresh_model: nn.Module, example_inputs: Any, recorded: Mapping[str, Any], tasks: Any,
                   where: str) -> nn.Module:
    from .extract import extract
    from .tasks import Tasks

    keep = list(recorded["keep"])
    if tasks is None:
        if not recorded.get("by_key"):
            raise ValueError(f"{where} is a model extracted for tasks {keep} whose outputs are picked by your "
                             "Tasks; pass the same tasks: taskprune.load(path, fresh_model, tasks=tasks)")
        tasks = Tasks(outputs={name: _by_key(name) for name in keep})
    return extract(fresh_model, example_inputs, keep=keep, tasks=tasks).model


def _by_key(name: str) -> Any:
    return lambda output: output[name]


# -- save / load helpers -------------------------------------------------------------------------------------
def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _tensor_spec(tensor: torch.Tensor) -> dict[str, Any]:
    return {"shape": [int(s) for s in tensor.shape], "dtype": str(tensor.dtype).removeprefix("torch.")}


def _input_spec(example_inputs: Any) -> dict[str, Any]:
    """Shapes and dtypes of the example inputs, or why they cannot be rebuilt from zeros."""
    if isinstance(example_inputs, torch.Tensor):
        return {"kind": "tensor", "items": [_tensor_spec(example_inputs)]}
    if isinstance(example_inputs, tuple) and len(example_inputs) == 1 and isinstance(example_inputs[0], list) \
            and example_inputs[0] and all(isinstance(x, torch.Tensor) for x in example_inputs[0]):
        # a list the model takes as one argument (see prune's `report.call`)
        return {"kind": "list_argument", "items": [_tensor_spec(x) for x in example_inputs[0]]}
    if isinstance(example_inputs, (tuple, list)) and example_inputs \
            and all(isinstance(x, torch.Tensor) for x in example_inputs):
        return {"kind": "tuple", "items": [_tensor_spec(x) for x in example_inputs]}
    if isinstance(example_inputs, Mapping):
        return {"kind": "dict", "items": []}
    return {"kind": "none" if example_inputs is None else "unsupported", "items": []}


_NOT_REBUILT = {"dict": "the model was pruned with dict (keyword) example inputs",
                "none": "no example inputs were recorded when it was saved",
                "unsupported": "its example inputs were not plain tensors"}


def _zeros_like_spec(spec: Mapping[str, Any], device: torch.device, where: str) -> Any:
    why = _NOT_REBUILT.get(spec["kind"], "")
    dtypes = [getattr(torch, item["dtype"], None) for item in spec["items"]]
    if not why and not all(isinstance(d, torch.dtype) for d in dtypes):
        why = f"it records an unknown input dtype among {[item['dtype'] for item in spec['items']]}"
    if why:
        raise ValueError(f"cannot rebuild example inputs for {where}: {why}; pass example_inputs= to load")
    zeros = [torch.zeros(item["shape"], dtype=dtype, device=device)
             for item, dtype in zip(spec["items"], dtypes, strict=True)]
    if spec["kind"] == "list_argument":
        return (zeros,)
    return zeros[0] if spec["kind"] == "tensor" else tuple(zeros)


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        raise ValueError(f"{os.fspath(path)!r} is not a taskprune file (torch.load with weights_only=True "
                         f"failed: {type(error).__name__}); write one with taskprune.save") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{os.fspath(path)!r} is not a taskprune file (no format={FORMAT!r} entry); "
                         "write one with taskprune.save")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{os.fspath(path)!r} has taskprune file format {version!r}; this taskprune "
                         f"({__version__}) reads up to {FORMAT_VERSION}: upgrade taskprune")
    missing = [key for key in (*_METADATA_KEYS, "history", "state_dict") if key not in payload]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is a damaged taskprune file: it lacks {', '.join(missing)}")
    return payload


def _check_layers(model: nn.Module, history: list[list[Any]], saved: Mapping[str, torch.Tensor],
                  where: str) -> None:
    """Before touching the model: every layer in the history and every saved weight exists in it."""
    for name, _, _ in history:
        target: Any = model
        for part in str(name).split("."):
            target = getattr(target, part, None)
        if not isinstance(target, (nn.Module, nn.Parameter)):
            raise ValueError(f"layer {name!r} in the pruning history of {where} does not exist in "
                             f"{type(model).__name__}; the file comes from another architecture")
    own = model.state_dict()
    extra, lacking = [k for k in saved if k not in own], [k for k in own if k not in saved]
    if extra or lacking:
        what = f"weight {extra[0]!r} of {where} does not exist in" if extra else \
            f"weight {lacking[0]!r} is missing from {where} but exists in"
        raise ValueError(f"{what} {type(model).__name__}; the file comes from another architecture")


def _check_shapes(model: nn.Module, saved: Mapping[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    for key, tensor in saved.items():
        if own[key].shape != tensor.shape:
            raise ValueError(f"after replaying the pruning, weight {key!r} of {type(model).__name__} has "
                             f"shape {list(own[key].shape)} but {where} holds {list(tensor.shape)}; "
                             "the file comes from another architecture (or the model was not fresh)")
