"""The taskprune file: what `save` writes and how every version of it is read (`read_payload`).

A taskprune file is a `torch.save` of plain containers only (dict, list, str, int, float, bool, tensors), so
`torch.load(path, weights_only=True)` reads it and loading never runs code from the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import torch

from .._version import __version__

__all__ = ["FORMAT", "FORMAT_VERSION", "METADATA_KEYS", "REPORT_KEYS", "input_spec", "package_version",
           "read_payload", "zeros_like_spec"]

FORMAT = "taskprune.pruned-model"
"""The value of the `format` entry that marks a taskprune file."""
FORMAT_VERSION = 3
"""Bumped when the file layout changes incompatibly; `load` refuses newer versions. Version 3 records how to make a
model that is not its original class again (the `rebuild` entry, e.g. a `taskprune.extract` model; version 2 named
it `extract`); files without one are still written as version 1."""

METADATA_KEYS = ("format", "format_version", "versions", "architecture", "criterion", "target", "ratio",
                 "reached", "params_before", "params_after", "macs_before", "macs_after", "inputs", "channel_map")
REPORT_KEYS = ("criterion", "target", "ratio", "reached", "params_before", "params_after", "macs_before",
               "macs_after")


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def _tensor_spec(tensor: torch.Tensor) -> dict[str, Any]:
    return {"shape": [int(s) for s in tensor.shape], "dtype": str(tensor.dtype).removeprefix("torch.")}


def input_spec(example_inputs: Any) -> dict[str, Any]:
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


def zeros_like_spec(spec: Mapping[str, Any], device: torch.device, where: str) -> Any:
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


def read_payload(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A taskprune file's contents in the current layout, whatever version wrote it: the one place that knows the
    older layouts (version 1 may lack the stored report; version 2 named its rebuild "extract").

    Raises:
        ValueError: `path` is not a taskprune file, a newer format, or a damaged one (the missing entries named).
    """
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
    missing = [key for key in (*METADATA_KEYS, "history", "state_dict") if key not in payload]
    if missing:
        raise ValueError(f"{os.fspath(path)!r} is a damaged taskprune file: it lacks {', '.join(missing)}")
    if version == 2 and "extract" in payload:
        payload["rebuild"] = {"kind": "extract", **payload.pop("extract")}
    if not isinstance(payload.get("report"), dict):
        payload["report"] = {**{key: payload[key] for key in REPORT_KEYS},
                             "warnings": ["this file predates stored reports: per-group rows are not available"]}
    return payload
