"""The read side of the local store."""

from strikes.store.query import MetricRow as MetricRow
from strikes.store.reader import ArtifactRecord as ArtifactRecord
from strikes.store.reader import ErrorRecord as ErrorRecord
from strikes.store.reader import EventTail as EventTail
from strikes.store.reader import GarbageReport as GarbageReport
from strikes.store.reader import MissingObject as MissingObject
from strikes.store.reader import RunRecord as RunRecord
from strikes.store.reader import Store as Store
from strikes.store.reader import TaskRecord as TaskRecord
from strikes.store.reader import open_store as open_store

__all__ = [
    "ArtifactRecord",
    "ErrorRecord",
    "EventTail",
    "GarbageReport",
    "MetricRow",
    "MissingObject",
    "RunRecord",
    "Store",
    "TaskRecord",
    "open_store",
]
