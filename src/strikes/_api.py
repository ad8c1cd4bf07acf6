"""The logging calls: find the current span, build the event, put it in the run's mailbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import msgspec

from strikes._context import current_span, warn_no_run
from strikes._run import check_name, check_tags
from strikes._secrets import mask_secrets
from strikes._values import MetricPoint, metric_value, snapshot, to_builtins
from strikes.events import Input, Metric, Output, Param, Tag
from strikes.runtime.actor import ArtifactJob

if TYPE_CHECKING:
    from strikes._context import Span

__all__ = [
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
    "push_update",
    "push_update_async",
    "tag",
    "wait_for_room",
]

_time_ns = time.time_ns
_get_span = current_span.get
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)
MAX_PARAM_BYTES = 1024 * 1024
"""A param's value is stored inline in every batch it is in: larger ones are refused."""
_param_encoder = msgspec.msgpack.Encoder()


def _timestamp_ns(timestamp: object) -> int:
    if not isinstance(timestamp, datetime):
        raise TypeError(f"timestamp must be a datetime, got {type(timestamp).__qualname__}")
    if timestamp.tzinfo is None:
        timestamp = timestamp.astimezone()  # naive means local time, as datetime.timestamp()
    return (timestamp - _EPOCH) // _ONE_MICROSECOND * 1000


def log_metric(  # noqa: C901 - one flat hot path beats helper calls per metric
    name: str,
    value: float,
    *,
    step: int = 0,
    timestamp: datetime | None = None,
    aggregation: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> float:
    """Log one metric point on the current task, else the current run; returns the value stored.

    ``aggregation`` (``direct``, ``min``, ``max``, ``avg``, ``sum``, ``count``) folds this
    value with the earlier ones of the same name in the same span. NaN and infinities are
    kept. Raises ``TypeError``/``ValueError`` naming a bad argument.
    """
    # The hot path of the library: every check is one cheap comparison, the rare cases
    # (coercion, aggregation, explicit timestamps, attributes) branch off it.
    span = _get_span()
    if type(name) is not str or not name or len(name) > 1024:
        check_name("name", name)
    if type(value) is not float:
        value = metric_value(value)
    if type(step) is not int:
        raise TypeError(f"step must be an int, got {type(step).__qualname__}")
    if span is None:
        warn_no_run("log_metric")
        return value
    ts = _time_ns()
    if aggregation is not None or timestamp is not None or attributes is not None:
        if aggregation is not None:
            value = span.aggregate(name, value, aggregation)
        if timestamp is not None:
            ts = _timestamp_ns(timestamp)
        if attributes is not None:
            attributes = to_builtins(dict(attributes))
    run = span.run
    run.put(
        Metric(
            run.run_id,
            span.span_id,
            span.parent_id,
            run.next_seq(),
            ts,
            name,
            value,
            step,
            attributes,
        )
    )
    if span is not run:  # tasks keep their metrics live, for scorers and top_n
        metrics = span.metrics  # type: ignore[attr-defined]
        points = metrics.get(name)
        if points is None:
            points = metrics[name] = []
        points.append(MetricPoint(value, step, ts))
    return value


async def log_metric_async(
    name: str,
    value: float,
    *,
    step: int = 0,
    timestamp: datetime | None = None,
    aggregation: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> float:
    """Like :func:`log_metric`, but first awaits room in the run's mailbox (:func:`wait_for_room`).

    The cooperative form for async code under ``backpressure="block"``: when the sinks
    fall behind, the caller's event loop (asyncio or trio) keeps running other tasks
    instead of blocking in the put.
    """
    await wait_for_room()
    return log_metric(
        name, value, step=step, timestamp=timestamp, aggregation=aggregation, attributes=attributes
    )


async def wait_for_room() -> None:
    """Return once the current run's mailbox has room, without blocking the event loop.

    Returns at once when there is room (the usual case, no thread involved) or no run;
    otherwise the wait happens on a worker thread, and cancelling the caller abandons it.
    """
    span = _get_span()
    if span is None:
        return
    mailbox = span.run._writer().mailbox
    if mailbox.has_room():
        return
    await anyio.to_thread.run_sync(mailbox.wait_for_room, abandon_on_cancel=True)


def log_metrics(
    metrics: Mapping[str, float] | None = None,
    /,
    *,
    step: int = 0,
    timestamp: datetime | None = None,
    aggregation: str | None = None,
    attributes: dict[str, Any] | None = None,
    **values: float,
) -> None:
    """Log several metrics at one step: ``log_metrics(loss=0.1, acc=0.9)`` or a dict."""
    merged = {**(metrics or {}), **values}
    for metric_name, metric in merged.items():
        log_metric(
            metric_name,
            metric,
            step=step,
            timestamp=timestamp,
            aggregation=aggregation,
            attributes=attributes,
        )


def _current(what: str) -> Span | None:
    span = current_span.get()
    if span is None:
        warn_no_run(what, stacklevel=4)
    return span


def log_param(name: str, value: Any) -> None:
    """Set a parameter on the current task, else the current run.

    Params whose names look like secrets (``api_key``, ``token``, ``password``, ...;
    also as keys of a dict value) are stored as ``"***"`` unless
    ``configure(mask_secrets=False)``. Raises ``ValueError`` naming ``value`` when it
    encodes to more than 1 MiB (log it with ``log_input`` or ``log_artifact`` instead).
    """
    check_name("name", name)
    span = _current("log_param")
    if span is None:
        return
    run = span.run
    stored = to_builtins(value)
    if run._settings.mask_secrets:
        stored = mask_secrets(name, stored)
    if not isinstance(stored, (int, float, bool)) and stored is not None:
        size = len(_param_encoder.encode(stored))
        if size > MAX_PARAM_BYTES:
            raise ValueError(
                f"value of param {name!r:.80} is {size} bytes encoded; params hold at most "
                f"{MAX_PARAM_BYTES} (use log_input or log_artifact for large values)"
            )
    if span is run:
        run.params[name] = stored
    run.put(
        Param(run.run_id, span.span_id, span.parent_id, run.next_seq(), _time_ns(), name, stored)
    )


def log_params(params: Mapping[str, Any] | None = None, /, **values: Any) -> None:
    """Set several parameters: ``log_params(lr=0.1, batch_size=32)`` or a dict."""
    for param_name, param in {**(params or {}), **values}.items():
        log_param(param_name, param)


def _log_value(kind: type[Input | Output], what: str, name: str, value: Any) -> None:
    check_name("name", name)
    span = _current(what)
    if span is None:
        return
    run = span.run
    value_snapshot = snapshot(value)
    if value_snapshot.blob is not None:
        run._put_blob(value_snapshot.blob)
    run.put(
        kind(
            run.run_id,
            span.span_id,
            span.parent_id,
            run.next_seq(),
            _time_ns(),
            name,
            value_snapshot.value,
            value_snapshot.ref,
            value_snapshot.type_name,
        )
    )
    if span is not run:
        target = span.inputs if kind is Input else span.outputs  # type: ignore[attr-defined]
        target[name] = value


def log_input(name: str, value: Any) -> None:
    """Record an input value on the current task, else the current run."""
    _log_value(Input, "log_input", name, value)


def log_inputs(inputs: Mapping[str, Any] | None = None, /, **values: Any) -> None:
    """Record several inputs: ``log_inputs(prompt=..., doc=...)`` or a dict."""
    for input_name, value in {**(inputs or {}), **values}.items():
        _log_value(Input, "log_inputs", input_name, value)


def log_output(name: str, value: Any) -> None:
    """Record an output value on the current task, else the current run."""
    _log_value(Output, "log_output", name, value)


def log_outputs(outputs: Mapping[str, Any] | None = None, /, **values: Any) -> None:
    """Record several outputs: ``log_outputs(answer=..., score=...)`` or a dict."""
    for output_name, value in {**(outputs or {}), **values}.items():
        _log_value(Output, "log_outputs", output_name, value)


def log_artifact(path: str | Path, *, name: str | None = None) -> None:
    """Store a file or directory (by content) with the current task, else the current run.

    The files are hashed and copied by the runtime shortly after the call; keep them
    unchanged until the run ends or ``push_update()`` returns. Raises
    ``FileNotFoundError`` naming ``path`` when it does not exist.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, got {type(path).__qualname__}")
    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    artifact_name = check_name("name", name) if name is not None else source.name
    span = _current("log_artifact")
    if span is None:
        return
    run = span.run
    run._put_job(
        ArtifactJob(artifact_name, source, span.span_id, span.parent_id, run.next_seq(), _time_ns())
    )


def tag(*tags: str) -> None:
    """Add tags to the current task, else the current run."""
    checked = check_tags("tags", tags)
    span = _current("tag")
    if span is None or not checked:
        return
    run = span.run
    if span is run:
        run.tags.extend(t for t in dict.fromkeys(checked) if t not in run.tags)
    run.put(Tag(run.run_id, span.span_id, span.parent_id, run.next_seq(), _time_ns(), checked))


def push_update() -> None:
    """Block until everything logged to the current run so far is in every sink."""
    span = _current("push_update")
    if span is not None:
        span.run.push_update()


async def push_update_async() -> None:
    """Like :func:`push_update`, awaitable: the caller's event loop keeps running meanwhile."""
    span = _current("push_update_async")
    if span is not None:
        await span.run.push_update_async()
