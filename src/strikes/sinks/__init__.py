"""Where batches of events go: the ``Sink`` protocol and the built-in sinks."""

from strikes.sinks.base import Batch as Batch
from strikes.sinks.base import Sink as Sink
from strikes.sinks.console import ConsoleSink as ConsoleSink
from strikes.sinks.local import LocalStore as LocalStore
from strikes.sinks.memory import MemorySink as MemorySink

__all__ = ["Batch", "ConsoleSink", "LocalStore", "MemorySink", "Sink"]
