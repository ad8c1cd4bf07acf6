"""strikes: record what agent code, experiments and evaluation loops do, at almost no cost."""

import importlib.metadata as _metadata

from strikes._api import log_artifact as log_artifact
from strikes._api import log_input as log_input
from strikes._api import log_inputs as log_inputs
from strikes._api import log_metric as log_metric
from strikes._api import log_metric_async as log_metric_async
from strikes._api import log_metrics as log_metrics
from strikes._api import log_output as log_output
from strikes._api import log_outputs as log_outputs
from strikes._api import log_param as log_param
from strikes._api import log_params as log_params
from strikes._api import push_update as push_update
from strikes._api import push_update_async as push_update_async
from strikes._api import tag as tag
from strikes._api import wait_for_room as wait_for_room
from strikes._config import Settings as Settings
from strikes._config import configure as configure
from strikes._context import NoRunWarning as NoRunWarning
from strikes._continue import RunContext as RunContext
from strikes._continue import continue_run as continue_run
from strikes._continue import get_run_context as get_run_context
from strikes._provenance import ProvenanceOptions as ProvenanceOptions
from strikes._run import Run as Run
from strikes._run import get_current_run as get_current_run
from strikes._run import run as run
from strikes._scorers import Scorer as Scorer
from strikes._task import AsyncTask as AsyncTask
from strikes._task import ScoreAssertionError as ScoreAssertionError
from strikes._task import SyncTask as SyncTask
from strikes._task import Task as Task
from strikes._task import TaskSpan as TaskSpan
from strikes._task import TaskSpanList as TaskSpanList
from strikes._task import task as task
from strikes._task import task_span as task_span
from strikes._values import MetricPoint as MetricPoint
from strikes.events import Provenance as Provenance
from strikes.runtime.actor import DeliveryPolicy as DeliveryPolicy
from strikes.runtime.spool import SpoolReport as SpoolReport
from strikes.runtime.spool import resend_spool as resend_spool
from strikes.sinks import ConsoleSink as ConsoleSink
from strikes.sinks import LocalStore as LocalStore
from strikes.sinks import MemorySink as MemorySink
from strikes.sinks import Sink as Sink
from strikes.store import RunRecord as RunRecord
from strikes.store import Store as Store
from strikes.store import TaskRecord as TaskRecord
from strikes.store import open_store as open_store

try:
    __version__ = _metadata.version("strikes")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0"

__all__ = [
    "AsyncTask",
    "ConsoleSink",
    "DeliveryPolicy",
    "LocalStore",
    "MemorySink",
    "MetricPoint",
    "NoRunWarning",
    "Provenance",
    "ProvenanceOptions",
    "Run",
    "RunContext",
    "RunRecord",
    "ScoreAssertionError",
    "Scorer",
    "Settings",
    "Sink",
    "SpoolReport",
    "Store",
    "SyncTask",
    "Task",
    "TaskRecord",
    "TaskSpan",
    "TaskSpanList",
    "__version__",
    "configure",
    "continue_run",
    "get_current_run",
    "get_run_context",
    "log_artifact",
    "log_input",
    "log_inputs",
    "log_metric",
    "log_metric_async",
    "log_metrics",
    "log_output",
    "log_outputs",
    "log_param",
    "log_params",
    "open_store",
    "push_update",
    "push_update_async",
    "resend_spool",
    "run",
    "tag",
    "task",
    "task_span",
    "wait_for_room",
]
