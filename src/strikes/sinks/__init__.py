"""Where batches of events go: the ``Sink`` protocol and the built-in sinks."""

from strikes.sinks.base import Batch as Batch
from strikes.sinks.base import Sink as Sink
from strikes.sinks.console import ConsoleSink as ConsoleSink
from strikes.sinks.local import LocalStore as LocalStore
from strikes.sinks.memory import MemorySink as MemorySink

__all__ = ["Batch", "ConsoleSink", "LocalStore", "MemorySink", "Sink"]


def __getattr__(name: str) -> type[Sink]:
    # OTLPSink needs the `otlp` extra: imported on first use, with a hint when it is missing.
    if name == "OTLPSink":
        try:
            from strikes.sinks.otlp import OTLPSink  # noqa: PLC0415
        except ImportError as exc:
            raise ImportError(
                f"OTLPSink needs the otlp extra: pip install 'strikes[otlp]' ({exc})"
            ) from exc
        return OTLPSink
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
