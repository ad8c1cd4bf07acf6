"""Store queries: run filters, run references, metrics and tasks across runs, tails, cleanup."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import strikes as dn
from strikes.store import EventTail, MetricRow
from strikes.store.segments import FRAME_HEADER, MAGIC, frame


def _boom() -> None:
    raise RuntimeError("boom")


def make_run(
    name: str,
    *,
    project: str = "p",
    tags: tuple[str, ...] = (),
    params: dict[str, object] | None = None,
    losses: tuple[float, ...] = (1.0, 0.5),
    fail: bool = False,
) -> str:
    """Log a small run through the public API and return its id."""
    try:
        with dn.run(name, project=project, tags=list(tags)) as run:
            run_id = run.run_id
            dn.log_params(**(params or {}))
            for step, loss in enumerate(losses):
                dn.log_metric("loss", loss, step=step)
            with dn.task_span("evaluate", label="eval"):
                dn.log_input("question", f"{name}?")
                dn.log_metric("score", 0.75)
                with dn.task_span("sample"):
                    dn.log_output("answer", 42)
            if fail:
                with dn.task_span("broken"):
                    _boom()
    except RuntimeError:
        pass
    return run_id


@pytest.fixture
def three(store: dn.Store) -> dict[str, str]:
    """Three runs in two projects, one failed."""
    return {
        "a": make_run(
            "train-a", project="vision", tags=("gpu", "nightly"), params={"lr": 0.1, "seed": 1}
        ),
        "b": make_run("train-b", project="vision", tags=("gpu",), params={"lr": 0.01, "seed": 2}),
        "c": make_run("eval-c", project="text", params={"lr": 1, "flag": True}, fail=True),
    }


class TestRunFilters:
    def test_no_filter_lists_every_run_newest_first(
        self, store: dn.Store, three: dict[str, str]
    ) -> None:
        """runs() without arguments returns all runs, the last started first."""
        assert [r.id for r in store.runs()] == [three["c"], three["b"], three["a"]]

    def test_project_tags_and_status(self, store: dn.Store, three: dict[str, str]) -> None:
        """project matches exactly, every tag must be present, status may be one or several."""
        assert {r.id for r in store.runs(project="vision")} == {three["a"], three["b"]}
        assert [r.id for r in store.runs(tags=["gpu", "nightly"])] == [three["a"]]
        assert [r.id for r in store.runs(status="failed")] == [three["c"]]
        assert len(store.runs(status=["failed", "finished"])) == 3
        assert store.runs(project="vision", status="failed") == []

    def test_name_is_a_glob_pattern(self, store: dn.Store, three: dict[str, str]) -> None:
        """name matches the whole run name with shell-style wildcards."""
        assert {r.id for r in store.runs(name="train-*")} == {three["a"], three["b"]}
        assert store.runs(name="train") == []
        assert [r.id for r in store.runs(name="*-[c]")] == [three["c"]]

    def test_params_match_values_and_predicates(
        self, store: dn.Store, three: dict[str, str]
    ) -> None:
        """A param filter compares values (1 equals 1.0 but not True) or calls a predicate."""
        assert [r.id for r in store.runs(params={"lr": 0.1})] == [three["a"]]
        assert [r.id for r in store.runs(params={"lr": 1.0})] == [three["c"]]
        assert [r.id for r in store.runs(params={"flag": True})] == [three["c"]]
        assert store.runs(params={"flag": 1}) == []
        assert store.runs(params={"missing": 1}) == []
        small = store.runs(params={"lr": lambda value: value < 0.5})
        assert {r.id for r in small} == {three["a"], three["b"]}

    def test_time_bounds(self, store: dn.Store, three: dict[str, str]) -> None:
        """since/until bound the start: aware datetimes, timedeltas before now, epoch seconds."""
        middle = store.run(three["b"]).started_at
        assert middle is not None
        assert {r.id for r in store.runs(since=middle)} == {three["b"], three["c"]}
        assert [r.id for r in store.runs(until=middle)] == [three["a"]]
        assert len(store.runs(since=timedelta(hours=1))) == 3
        assert store.runs(until=time.time() - 3600) == []

    def test_limit(self, store: dn.Store, three: dict[str, str]) -> None:
        """limit keeps the newest runs."""
        assert [r.id for r in store.runs(limit=2)] == [three["c"], three["b"]]

    def test_bad_arguments_are_named(self, store: dn.Store) -> None:
        """Bad filter values raise TypeError or ValueError naming the argument."""
        with pytest.raises(TypeError, match="tags"):
            store.runs(tags="gpu")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timezone"):
            store.runs(since=datetime(2024, 1, 1))  # noqa: DTZ001
        with pytest.raises(TypeError, match="time bound"):
            store.runs(since="yesterday")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="limit"):
            store.runs(limit=-1)

    def test_empty_or_missing_store(self, tmp_path: Path) -> None:
        """A store directory that does not exist lists no runs."""
        assert dn.open_store(tmp_path / "nowhere").runs(project="x") == []

    def test_lost_manifest_is_rebuilt_from_segments(
        self, store: dn.Store, three: dict[str, str]
    ) -> None:
        """A run whose manifest is gone is still listed and filtered, from its segments."""
        store.layout.manifest(three["a"]).unlink()
        (record,) = store.runs(tags=["nightly"], name="train-a")
        assert record.status == "finished"
        assert record.params == {"lr": 0.1, "seed": 1}


class TestResolve:
    def test_id_prefix_and_name(self, store: dn.Store, three: dict[str, str]) -> None:
        """A run is found by its id, a unique prefix of it, or its name."""
        run_id = three["b"]
        assert store.resolve(run_id).id == run_id
        prefix = next(
            run_id[:n]
            for n in range(4, 33)
            if not any(other.startswith(run_id[:n]) for other in three.values() if other != run_id)
        )
        assert store.resolve(prefix).id == run_id
        assert store.resolve("train-b").id == run_id

    def test_unknown_and_ambiguous(self, store: dn.Store, three: dict[str, str]) -> None:
        """No match raises KeyError; a name shared by two runs raises LookupError."""
        with pytest.raises(KeyError, match="nope"):
            store.resolve("nope")
        make_run("train-a")
        with pytest.raises(LookupError, match="ambiguous"):
            store.resolve("train-a")


class TestAcrossRuns:
    def test_metrics_rows_of_matching_runs(self, store: dn.Store, three: dict[str, str]) -> None:
        """Store.metrics returns one row per point, for runs given by filters or references."""
        rows = store.metrics(project="vision", names="loss")
        assert {row.run_id for row in rows} == {three["a"], three["b"]}
        assert all(isinstance(row, MetricRow) and row.metric == "loss" for row in rows)
        (first, second) = store.metrics(["train-a"], names=["loss"])
        assert (first.step, first.value, second.step, second.value) == (0, 1.0, 1, 0.5)
        assert first.timestamp.tzinfo is UTC
        mirrored = store.metrics(["eval-c"], names=["eval.score"])
        assert [row.value for row in mirrored] == [0.75]

    def test_runs_and_filters_together_is_an_error(
        self, store: dn.Store, three: dict[str, str]
    ) -> None:
        """Giving explicit runs and filters at once is refused, not silently merged."""
        with pytest.raises(TypeError, match="not both"):
            store.metrics(["train-a"], project="vision")

    def test_tasks_filtered_by_name_label_and_status(
        self, store: dn.Store, three: dict[str, str]
    ) -> None:
        """Store.tasks flattens task trees; each task knows its run and depth."""
        tasks = store.tasks(project="vision")
        assert sorted((t.name, t.depth) for t in tasks) == [
            ("evaluate", 0),
            ("evaluate", 0),
            ("sample", 1),
            ("sample", 1),
        ]
        assert {t.run_id for t in tasks} == {three["a"], three["b"]}
        (failed,) = store.tasks(task_status="failed")
        assert (failed.name, failed.run_id, failed.status) == ("broken", three["c"], "failed")
        assert "boom" in (failed.error or "")
        assert {t.name for t in store.tasks(label="eval")} == {"evaluate"}
        assert {t.name for t in store.tasks(task_name="s*")} == {"sample"}

    def test_run_duration_and_manifest(self, store: dn.Store, three: dict[str, str]) -> None:
        """A finished run has a non-negative duration; its manifest summarises run metrics."""
        record = store.run(three["a"])
        assert record.duration is not None
        assert record.duration >= 0
        assert record.manifest.metrics["loss"].last == 0.5


class TestEventTail:
    def test_poll_returns_only_new_events(self, store: dn.Store) -> None:
        """Each poll returns what was appended since the last one."""
        with dn.run("live") as run:
            dn.log_metric("x", 1.0)
            dn.push_update()
            tail = EventTail(store.layout, run.run_id)
            first = tail.poll()
            assert [e.name for e in first if type(e).__name__ == "Metric"] == ["x"]  # type: ignore[attr-defined]
            assert tail.poll() == []
            dn.log_metric("y", 2.0)
            dn.push_update()
            assert [getattr(e, "name", None) for e in tail.poll()] == ["y"]

    def test_a_frame_cut_short_waits_for_the_rest(self, store: dn.Store) -> None:
        """A partly written frame is not skipped: it is returned once complete."""
        run_id = make_run("source")
        data = b"".join(
            path.read_bytes() for path in sorted(store.layout.segments(run_id).iterdir())
        )
        assert data.startswith(MAGIC)
        length, _ = FRAME_HEADER.unpack_from(data, len(MAGIC))
        payload = data[len(MAGIC) + FRAME_HEADER.size : len(MAGIC) + FRAME_HEADER.size + length]
        target_id = os.urandom(16).hex()
        segments = store.layout.segments(target_id)
        segments.mkdir(parents=True)
        whole = frame(payload)
        path = segments / "w.0000.seg"
        path.write_bytes(MAGIC + whole[:7])
        tail = EventTail(store.layout, target_id)
        assert tail.poll() == []
        with path.open("ab") as handle:
            handle.write(whole[7:])
        assert len(tail.poll()) > 0
        assert tail.report.corrupt_frames == 0


class TestRemoveAndGarbage:
    def test_remove_deletes_a_finished_run(self, store: dn.Store, three: dict[str, str]) -> None:
        """remove() deletes the run's directory; it is gone from listings."""
        store.remove("train-a")
        assert not store.layout.run_dir(three["a"]).exists()
        assert three["a"] not in {r.id for r in store.runs()}

    def test_remove_refuses_a_running_run(self, store: dn.Store) -> None:
        """A running run is only removed with force=True."""
        with dn.run("live") as run:
            dn.push_update()
            with pytest.raises(ValueError, match="still running"):
                store.remove(run.run_id)
            assert store.layout.run_dir(run.run_id).exists()

    def test_gc_deletes_unreferenced_objects_after_grace(self, store: dn.Store) -> None:
        """Objects of removed runs go at gc; referenced and recent ones stay; dry runs keep all."""
        dn.configure(provenance=False)  # only the logged values are objects
        with dn.run("big-a"):
            dn.log_input("blob", "a" * 10_000)
        with dn.run("big-b"):
            dn.log_input("blob", "b" * 10_000)
        objects = sorted(p for p in store.layout.objects.rglob("*") if p.is_file())
        assert len(objects) == 2
        store.remove("big-a")
        assert store.collect_garbage(grace=3600).files == 0
        dry = store.collect_garbage(grace=0, dry_run=True)
        assert dry.files == 1
        assert all(p.exists() for p in objects)
        report = store.collect_garbage(grace=0)
        assert report.files == 1
        assert report.bytes > 10_000
        (left,) = [p for p in objects if p.exists()]
        assert store.run(store.resolve("big-b").id).inputs["blob"] == "b" * 10_000
        assert left.name in store.referenced_objects()
