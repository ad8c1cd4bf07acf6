"""Tables of runs, metrics and tasks as pandas or polars DataFrames, CSV and Parquet files.

pandas (with pyarrow) comes with ``strikes[pandas]``, polars with ``strikes[polars]``;
CSV needs neither. Column names are documented in ``docs/reading.md`` and
:mod:`strikes.store.query`.
"""

from __future__ import annotations

import csv
import importlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TextIO

import msgspec

from strikes.store.query import METRIC_COLUMNS, NS_COLUMNS, RUN_COLUMNS, TASK_COLUMNS, Table

__all__ = [
    "FIXED_COLUMNS",
    "Backend",
    "Format",
    "to_frame",
    "to_pandas",
    "to_polars",
    "write_csv",
    "write_csv_stream",
    "write_json",
    "write_parquet",
    "write_table",
]

Backend = Literal["pandas", "polars"]
"""Which DataFrame library to build."""
Format = Literal["csv", "parquet", "json"]
"""File formats :func:`write_table` writes."""

FIXED_COLUMNS = frozenset(RUN_COLUMNS) | frozenset(METRIC_COLUMNS) | frozenset(TASK_COLUMNS)
"""Columns whose values share one type (or are missing) in every table."""

_EXTRA = {"pandas": "strikes[pandas]", "polars": "strikes[polars]", "pyarrow": "strikes[pandas]"}
_json = msgspec.json.Encoder()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _require(module: str) -> ModuleType:
    """Import an optional dependency; raises ``ImportError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module} is not installed: pip install '{_EXTRA[module]}'") from exc


def _uniform(values: list[Any]) -> list[Any]:
    """Values of one column, as JSON text when they mix types a columnar format cannot hold."""
    kinds = {type(value) for value in values if value is not None}
    if len(kinds) <= 1 or kinds <= {int, float}:
        return values
    return [None if value is None else _as_text(value) for value in values]


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else _json.encode(value).decode()


def _columns(table: Table) -> dict[str, list[Any]]:
    # Fixed columns hold one type by construction; only param.* columns can mix types.
    return {
        name: values if name in FIXED_COLUMNS else _uniform(values)
        for name, values in table.items()
    }


def _arrow(table: Table) -> Any:
    """The table as a ``pyarrow.Table``; raises ``ImportError`` without pyarrow."""
    pa = _require("pyarrow")
    arrays = {}
    for name, values in _columns(table).items():
        if name in NS_COLUMNS:
            arrays[name] = pa.array(values, type=pa.timestamp("ns", tz="UTC"))
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def to_pandas(table: Table) -> Any:
    """A ``pandas.DataFrame`` with one column per table column; times as UTC datetimes."""
    pd = _require("pandas")
    try:
        # Through Arrow when it is there (it is, with strikes[pandas]): several times
        # faster than pandas reading a million-row list of Python objects.
        return _arrow(table).to_pandas()
    except ImportError:
        pass
    frame = pd.DataFrame(_columns(table), columns=list(table))
    for name in NS_COLUMNS & table.keys():
        frame[name] = pd.to_datetime(frame[name], unit="ns", utc=True)
    return frame


def to_polars(table: Table) -> Any:
    """A ``polars.DataFrame`` with one column per table column; times as UTC datetimes."""
    pl = _require("polars")
    columns = _columns(table)
    ns = NS_COLUMNS & table.keys()
    frame = pl.DataFrame(
        {name: values for name, values in columns.items() if name not in ns},
        strict=False,
    )
    for name in ns:
        series = (
            pl.Series(name, columns[name], dtype=pl.Int64)
            .cast(pl.Datetime("ns"))
            .dt.replace_time_zone("UTC")
        )
        frame = frame.with_columns(series)
    return frame.select(list(table))


def to_frame(table: Table, backend: Backend = "pandas") -> Any:
    """The table as a DataFrame of ``backend``; raises ``ValueError`` for an unknown backend."""
    if backend == "pandas":
        return to_pandas(table)
    if backend == "polars":
        return to_polars(table)
    raise ValueError(f"backend must be 'pandas' or 'polars', got {backend!r}")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def write_csv(table: Table, path: str | os.PathLike[str]) -> Path:
    """Write the table as CSV (header row, ISO 8601 times, empty cells for missing values)."""
    target = Path(path)
    with target.open("w", newline="", encoding="utf-8") as handle:
        write_csv_stream(table, handle)
    return target


def write_csv_stream(table: Table, handle: TextIO) -> None:
    """Write the table as CSV to an open text stream (e.g. ``sys.stdout``)."""
    names = list(table)
    ns = [name in NS_COLUMNS for name in names]
    writer = csv.writer(handle)
    writer.writerow(names)
    for row in zip(*(table[name] for name in names), strict=True):
        writer.writerow(
            [
                _ns_iso(cell) if is_ns and cell else _csv_cell(cell)
                for cell, is_ns in zip(row, ns, strict=True)
            ]
        )


def _ns_iso(ns: int) -> str:
    # Integer arithmetic keeps the exact microsecond; a float would round some up.
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def write_parquet(table: Table, path: str | os.PathLike[str]) -> Path:
    """Write the table as Parquet with pyarrow, else polars; raises ``ImportError`` with neither."""
    target = Path(path)
    try:
        arrow = _arrow(table)
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        try:
            to_polars(table).write_parquet(target)
        except ImportError:
            raise ImportError(
                "Parquet needs pyarrow or polars: "
                "pip install 'strikes[pandas]' or 'strikes[polars]'"
            ) from None
        return target
    pq.write_table(arrow, target)
    return target


def write_json(table: Table, path: str | os.PathLike[str]) -> Path:
    """Write the table as JSON lines, one object per row (times as ISO 8601 text)."""
    target = Path(path)
    names = list(table)
    with target.open("wb") as handle:
        for row in zip(*(table[name] for name in names), strict=True):
            record = {
                name: datetime.fromtimestamp(cell / 1e9, tz=UTC)
                if name in NS_COLUMNS and cell
                else cell
                for name, cell in zip(names, row, strict=True)
            }
            handle.write(_json.encode(record) + b"\n")
    return target


def write_table(table: Table, path: str | os.PathLike[str], fmt: Format | None = None) -> Path:
    """Write the table as ``fmt`` (default: by suffix); raises ``ValueError`` if unknown."""
    target = Path(path)
    chosen = fmt or {
        ".csv": "csv",
        ".parquet": "parquet",
        ".pq": "parquet",
        ".jsonl": "json",
        ".json": "json",
    }.get(target.suffix.lower())
    if chosen == "csv":
        return write_csv(table, target)
    if chosen == "parquet":
        return write_parquet(table, target)
    if chosen == "json":
        return write_json(table, target)
    raise ValueError(
        f"format must be csv, parquet or json (or a path ending in one), got {fmt or target.name!r}"
    )
