"""Exports: the runs, metrics and tasks tables as DataFrames, CSV, Parquet and JSON lines."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

import strikes as dn
from strikes.store.export import to_frame, write_table
from strikes.store.query import METRIC_COLUMNS, RUN_COLUMNS, TASK_COLUMNS


@pytest.fixture
def runs(store: dn.Store) -> dn.Store:
    """Two runs with params of mixed types, metrics and a task tree."""
    with dn.run("first", tags=["x", "y"]):
        dn.log_params(lr=0.1, layers=[64, 64])
        for step in range(3):
            dn.log_metric("loss", 1.0 / (step + 1), step=step)
        with dn.task_span("evaluate", label="eval"):
            dn.log_input("question", "2+2?")
            dn.log_output("answer", {"text": "4"})
            dn.log_metric("score", 1.0)
    with dn.run("second"):
        dn.log_params(lr="auto")
        dn.log_metric("loss", float("nan"), step=0)
    return store


class TestTables:
    def test_runs_table_columns(self, runs: dn.Store) -> None:
        """The runs table has the fixed columns, then param.* and metric.*.last|min|max."""
        table = runs.table("runs")
        assert list(table)[: len(RUN_COLUMNS)] == list(RUN_COLUMNS)
        assert {"param.lr", "param.layers", "metric.loss.last", "metric.loss.min"} <= set(table)
        by_name = dict(zip(table["name"], range(2), strict=True))
        first, second = by_name["first"], by_name["second"]
        assert table["tags"][first] == "x,y"
        assert table["param.layers"][first] == "[64,64]"
        assert table["param.layers"][second] is None
        assert table["metric.loss.last"][first] == pytest.approx(1 / 3)
        assert table["metric.loss.max"][first] == 1.0
        assert table["metric.loss.last"][second] is None  # NaN is a missing cell

    def test_metrics_table_rows(self, runs: dn.Store) -> None:
        """The metrics table has a row per point, mirrored task metrics included."""
        table = runs.table("metrics", ["first"])
        assert tuple(table) == METRIC_COLUMNS
        assert table["metric"] == ["loss", "loss", "loss", "eval.score"]
        assert table["step"] == [0, 1, 2, 0]
        assert all(isinstance(ns, int) and ns > 0 for ns in table["timestamp"])
        only = runs.table("metrics", names=["eval.score"])
        assert only["value"] == [1.0]

    def test_tasks_table_rows(self, runs: dn.Store) -> None:
        """The tasks table has a row per task with values as JSON text."""
        table = runs.table("tasks")
        assert tuple(table) == TASK_COLUMNS
        assert table["name"] == ["evaluate"]
        assert table["status"] == ["finished"]
        assert json.loads(table["inputs"][0]) == {"question": "2+2?"}
        assert json.loads(table["outputs"][0]) == {"answer": {"text": "4"}}
        assert json.loads(table["metrics"][0]) == {"score": 1.0}

    def test_unknown_kind(self, runs: dn.Store) -> None:
        """An unknown table kind is a ValueError naming the choices."""
        with pytest.raises(ValueError, match="runs"):
            runs.table("events")  # type: ignore[arg-type]


class TestFiles:
    def test_csv_has_a_header_and_iso_times(self, runs: dn.Store, tmp_path: Path) -> None:
        """CSV needs no extra: a header row, ISO 8601 times, empty cells for missing values."""
        path = runs.export("metrics", tmp_path / "m.csv", ["first"])
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert [row["metric"] for row in rows] == ["loss", "loss", "loss", "eval.score"]
        assert rows[0]["timestamp"].endswith("+00:00")
        path = runs.export("runs", tmp_path / "r.csv")
        with path.open(newline="") as handle:
            by_name = {row["name"]: row for row in csv.DictReader(handle)}
        assert by_name["second"]["metric.loss.last"] == ""
        assert by_name["first"]["param.lr"] == "0.1"

    def test_json_lines(self, runs: dn.Store, tmp_path: Path) -> None:
        """A .jsonl path writes one JSON object per row."""
        path = runs.export("tasks", tmp_path / "t.jsonl")
        (row,) = [json.loads(line) for line in path.read_text().splitlines()]
        assert row["name"] == "evaluate"

    def test_unknown_format(self, runs: dn.Store, tmp_path: Path) -> None:
        """A path with an unknown suffix and no format is a ValueError."""
        with pytest.raises(ValueError, match="format"):
            write_table(runs.table("runs"), tmp_path / "r.xlsx")

    def test_parquet_round_trip(self, runs: dn.Store, tmp_path: Path) -> None:
        """Parquet keeps column names, types and UTC timestamps (pyarrow)."""
        pq = pytest.importorskip("pyarrow.parquet")
        path = runs.export("metrics", tmp_path / "m.parquet", ["first"])
        table = pq.read_table(path)
        assert table.column_names == list(METRIC_COLUMNS)
        assert str(table.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
        assert table.column("step").to_pylist() == [0, 1, 2, 0]

    def test_parquet_falls_back_to_polars(
        self, runs: dn.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without pyarrow, Parquet is written by polars."""
        pl = pytest.importorskip("polars")
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        path = runs.export("runs", tmp_path / "r.parquet")
        assert sorted(pl.read_parquet(path)["name"].to_list()) == ["first", "second"]

    def test_parquet_without_either_library(
        self, runs: dn.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With neither pyarrow nor polars, the error names the extras to install."""
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        monkeypatch.setitem(sys.modules, "polars", None)
        with pytest.raises(ImportError, match=r"strikes\[pandas\]"):
            runs.export("runs", tmp_path / "r.parquet")


class TestDataFrames:
    def test_pandas(self, runs: dn.Store) -> None:
        """The pandas frame has the table's columns and a UTC datetime timestamp."""
        pd = pytest.importorskip("pandas")
        frame = runs.dataframe("metrics", ["first"])
        assert list(frame.columns) == list(METRIC_COLUMNS)
        assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
        assert str(frame["timestamp"].dt.tz) == "UTC"
        assert frame["value"].tolist()[:3] == pytest.approx([1.0, 0.5, 1 / 3])
        runs_frame = runs.dataframe("runs")
        assert set(runs_frame["name"]) == {"first", "second"}
        # lr is 0.1 in one run and "auto" in the other: one column type, as text
        assert set(runs_frame["param.lr"]) == {"0.1", "auto"}

    def test_pandas_without_pyarrow(self, runs: dn.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without pyarrow, pandas builds the same columns and UTC timestamps itself."""
        pd = pytest.importorskip("pandas")
        monkeypatch.setitem(sys.modules, "pyarrow", None)
        frame = runs.dataframe("metrics", ["first"])
        assert list(frame.columns) == list(METRIC_COLUMNS)
        assert isinstance(frame["timestamp"].dtype, pd.DatetimeTZDtype)
        assert frame["step"].tolist() == [0, 1, 2, 0]

    def test_polars(self, runs: dn.Store) -> None:
        """The polars frame has the table's columns and a UTC datetime timestamp."""
        pl = pytest.importorskip("polars")
        frame = runs.dataframe("metrics", ["first"], backend="polars")
        assert frame.columns == list(METRIC_COLUMNS)
        assert frame.schema["timestamp"] == pl.Datetime("ns", "UTC")
        assert frame["step"].to_list() == [0, 1, 2, 0]
        tasks = runs.dataframe("tasks", backend="polars")
        assert tasks["name"].to_list() == ["evaluate"]

    def test_missing_extra_names_it(self, runs: dn.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without pandas, asking for a pandas frame names the extra to install."""
        monkeypatch.setitem(sys.modules, "pandas", None)
        with pytest.raises(ImportError, match=r"strikes\[pandas\]"):
            runs.dataframe("runs")

    def test_unknown_backend(self, runs: dn.Store) -> None:
        """An unknown backend is a ValueError."""
        with pytest.raises(ValueError, match="backend"):
            to_frame(runs.table("runs"), "spark")  # type: ignore[arg-type]
