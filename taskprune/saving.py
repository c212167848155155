"""`taskprune.saving`, the documented path of `taskprune.keeping`'s file functions: `save`, `load`,
`read_metadata`, `read_report`, `export_onnx`, `FORMAT`, `FORMAT_VERSION`."""

from .keeping import FORMAT as FORMAT
from .keeping import FORMAT_VERSION as FORMAT_VERSION
from .keeping import export_onnx as export_onnx
from .keeping import load as load
from .keeping import read_metadata as read_metadata
from .keeping import read_report as read_report
from .keeping import save as save

__all__ = ["FORMAT", "FORMAT_VERSION", "export_onnx", "load", "read_metadata", "read_report", "save"]
