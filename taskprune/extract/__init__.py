"""`extract()`: a model that computes only the tasks a product needs, traced with `torch.fx` (`tracing`)."""

from .extraction import extract as extract
from .tracing import TraceFailure as TraceFailure
from .tracing import trace as trace

__all__ = ["TraceFailure", "extract", "trace"]
