"""`save` / `load` a pruned model without pickled code, and read a saved file without building the model.

A taskprune file (fileformat.py) holds the pruning history, the pruned weights and metadata; `load` rebuilds the
pruned architecture by replaying the history on a fresh instance of the original model (made again first by its
registered rebuild when the model was not its original class, rebuild.py), then loads the weights strictly.

Example:
    >>> result = taskprune.prune(model, torch.randn(1, 3, 384, 640), ratio=0.3)
    >>> taskprune.save(result, "pruned.pt", example_inputs=torch.randn(1, 3, 384, 640))
    >>> pruned = taskprune.load("pruned.pt", MyNet())
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._runtime import atomic_write, preserved_modes
from .._version import __version__
from ..graph import replay_history
from ..reporting import PruneReport
from .fileformat import (
    FORMAT,
    FORMAT_VERSION,
    METADATA_KEYS,
    input_spec,
    package_version,
    read_payload,
    zeros_like_spec,
)
from .rebuild import rebuild, rebuild_of

__all__ = ["load", "read_metadata", "read_report", "save"]


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
    made = rebuild_of(model)  # a model load must make again before replaying (an extracted one, say)
    payload: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION if made else 1,  # readers before version 3 read the plain files
        "versions": {"taskprune": __version__, "torch": str(torch.__version__),
                     "torch_pruning": package_version("torch-pruning")},
        "architecture": made["architecture"] if made else f"{type(model).__module__}.{type(model).__qualname__}",
        "criterion": str(report.criterion), "target": str(report.target),
        "ratio": float(report.ratio), "reached": float(report.reached),
        "params_before": int(report.params_before), "params_after": int(report.params_after),
        "macs_before": int(report.macs_before), "macs_after": int(report.macs_after),
        "inputs": input_spec(example_inputs),
        "channel_map": {str(k): [int(i) for i in v] for k, v in result.channel_map.items()},
        "history": [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in result.history],
        "report": json.loads(report.to_json()) if hasattr(report, "to_json") else None,
        **({"rebuild": made} if made else {}),
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
    payload = read_payload(path)
    metadata = {key: payload[key] for key in METADATA_KEYS if key != "channel_map"}
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
    return PruneReport.from_dict(read_payload(path)["report"])


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
    payload = read_payload(path)
    where = f"{os.fspath(path)!r} (saved from {payload['architecture']})"
    if example_inputs is None:
        device = next(fresh_model.parameters(), torch.zeros(0)).device
        example_inputs = zeros_like_spec(payload["inputs"], device, where)
    saved: dict[str, torch.Tensor] = payload["state_dict"]
    if "rebuild" in payload:
        fresh_model = rebuild(fresh_model, example_inputs, payload["rebuild"], tasks, where)
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
