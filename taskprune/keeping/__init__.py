"""Keeping a pruned model: `save` / `load` (replaying the pruning history on a fresh instance, no pickled code),
reading a file without the model (`read_metadata`, `read_report`) and `export_onnx` with a parity check.
`taskprune.saving` is the documented path of the same names."""

from .export import export_onnx as export_onnx
from .fileformat import FORMAT as FORMAT
from .fileformat import FORMAT_VERSION as FORMAT_VERSION
from .rebuild import list_rebuilds as list_rebuilds
from .rebuild import mark_rebuild as mark_rebuild
from .rebuild import register_rebuild as register_rebuild
from .saving import load as load
from .saving import read_metadata as read_metadata
from .saving import read_report as read_report
from .saving import save as save

__all__ = ["FORMAT", "FORMAT_VERSION", "export_onnx", "list_rebuilds", "load", "mark_rebuild", "read_metadata",
           "read_report", "register_rebuild", "save"]
