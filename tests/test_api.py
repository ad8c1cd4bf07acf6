"""The logging calls: what each stores, and how each refuses bad input."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

import strikes as dn
from strikes._values import INLINE_MAX_BYTES
from strikes.events import Input, Metric


def _only_run(store: dn.Store) -> dn.RunRecord:
    (record,) = store.runs()
    return record


class TestMetrics:
    def test_step_timestamp_and_attributes(self, store: dn.Store) -> None:
        """A metric keeps its value, step, timestamp and attributes."""
        when = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        with dn.run("r"):
            dn.log_metric("loss", 0.25, step=3, timestamp=when, attributes={"split": "val"})
        (point,) = _only_run(store).metrics["loss"]
        assert (point.value, point.step, point.timestamp) == (0.25, 3, when)

    def test_attributes_reach_the_event(self, memory: dn.MemorySink) -> None:
        """Metric attributes are carried on the event."""
        with dn.run("r"):
            dn.log_metric("loss", 1, attributes={"split": "val"})
        (metric,) = memory.of_type(Metric)
        assert metric.attributes == {"split": "val"}

    def test_nan_and_infinity_are_kept(self, store: dn.Store) -> None:
        """NaN and infinities are stored as they are, not dropped or nulled."""
        with dn.run("r"):
            dn.log_metric("m", math.nan)
            dn.log_metric("m", math.inf)
            dn.log_metric("m", -math.inf)
        values = [p.value for p in _only_run(store).metrics["m"]]
        assert math.isnan(values[0])
        assert values[1:] == [math.inf, -math.inf]

    def test_ints_bools_and_numpy_like_values(self, store: dn.Store) -> None:
        """Ints, bools and objects with __float__ become floats."""

        class Scalar:
            def __float__(self) -> float:
                return 4.5

        with dn.run("r"):
            dn.log_metric("m", 3)
            dn.log_metric("m", True)
            dn.log_metric("m", Scalar())  # type: ignore[arg-type]
        assert [p.value for p in _only_run(store).metrics["m"]] == [3.0, 1.0, 4.5]

    @pytest.mark.parametrize(
        ("aggregation", "expected"),
        [
            ("direct", [4.0, 1.0, 7.0]),
            ("min", [4.0, 1.0, 1.0]),
            ("max", [4.0, 4.0, 7.0]),
            ("sum", [4.0, 5.0, 12.0]),
            ("avg", [4.0, 2.5, 4.0]),
            ("count", [1.0, 2.0, 3.0]),
        ],
    )
    def test_aggregations(self, store: dn.Store, aggregation: str, expected: list[float]) -> None:
        """Each aggregation folds repeated logs of a metric in the same span."""
        with dn.run("r"):
            for value in (4, 1, 7):
                dn.log_metric("m", value, aggregation=aggregation)
        assert [p.value for p in _only_run(store).metrics["m"]] == expected

    def test_log_metrics_kwargs_and_dict(self, store: dn.Store) -> None:
        """log_metrics takes keywords or a dict, all at one step."""
        with dn.run("r"):
            dn.log_metrics(loss=0.5, acc=0.9, step=2)
            dn.log_metrics({"f1": 0.7}, step=3)
        metrics = _only_run(store).metrics
        assert (metrics["loss"][0].value, metrics["loss"][0].step) == (0.5, 2)
        assert (metrics["acc"][0].value, metrics["f1"][0].step) == (0.9, 3)

    def test_metric_in_task_is_mirrored_with_label(self, store: dn.Store) -> None:
        """A metric logged in a task is on the task and on the run as <label>.<name>."""
        with dn.run("r"), dn.task_span("Tokenize Text"):
            dn.log_metric("token_count", 12)
        record = _only_run(store)
        assert record.tasks[0].metrics["token_count"][0].value == 12
        assert record.metrics["tokenize_text.token_count"][0].value == 12
        assert "token_count" not in record.metrics


class TestBadInput:
    @pytest.mark.parametrize(
        ("call", "error", "match"),
        [
            (lambda: dn.log_metric("", 1), ValueError, "name must not be empty"),
            (lambda: dn.log_metric(3, 1), TypeError, "name must be a str"),  # type: ignore[arg-type]
            (lambda: dn.log_metric("x" * 5000, 1), ValueError, "name must be at most"),
            (lambda: dn.log_metric("m", "high"), TypeError, "metric value must be a real number"),  # type: ignore[arg-type]
            (lambda: dn.log_metric("m", None), TypeError, "metric value"),  # type: ignore[arg-type]
            (lambda: dn.log_metric("m", 1, step=1.5), TypeError, "step must be an int"),  # type: ignore[arg-type]
            (lambda: dn.log_metric("m", 1, timestamp=3), TypeError, "timestamp must be a datetime"),  # type: ignore[arg-type]
            (
                lambda: dn.log_metric("m", 1, aggregation="median"),
                ValueError,
                "aggregation must be",
            ),
            (lambda: dn.log_param("", 1), ValueError, "name must not be empty"),
            (lambda: dn.log_input(None, 1), TypeError, "name must be a str"),  # type: ignore[arg-type]
            (lambda: dn.tag("ok", ""), ValueError, "tags must not be empty"),
            (lambda: dn.tag(3), TypeError, "tags must be a str"),  # type: ignore[arg-type]
            (lambda: dn.log_artifact("/no/such/file"), FileNotFoundError, "/no/such/file"),
            (lambda: dn.log_artifact(3), TypeError, "path must be"),  # type: ignore[arg-type]
        ],
    )
    def test_errors_name_the_argument(
        self, call: object, error: type[Exception], match: str
    ) -> None:
        """A bad argument raises at the call site, with the argument's name in the message."""
        with dn.run("r"), pytest.raises(error, match=match):
            call()  # type: ignore[operator]

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"name": ""}, ValueError, "name must not be empty"),
            ({"name": 5}, TypeError, "name must be a str"),
            ({"project": ""}, ValueError, "project must not be empty"),
            ({"tags": "abc"}, TypeError, "tags must be a list of str"),
            ({"tags": ["ok", 1]}, TypeError, "tags must be a str"),
        ],
    )
    def test_run_arguments(
        self, kwargs: dict[str, object], error: type[Exception], match: str
    ) -> None:
        """run() refuses bad names, projects and tags, naming them."""
        with pytest.raises(error, match=match):
            dn.run(**kwargs)  # type: ignore[arg-type]

    def test_unserializable_value_is_stored_by_repr_with_one_warning(self, store: dn.Store) -> None:
        """An object msgspec cannot encode is stored as its repr, warning once per type."""

        class Opaque:
            def __repr__(self) -> str:
                return "<Opaque 1>"

        with dn.run("r"):
            with pytest.warns(RuntimeWarning, match="Opaque value cannot be serialized"):
                dn.log_input("thing", Opaque())
            dn.log_output("things", [Opaque(), {"nested": Opaque()}])  # no second warning
        record = _only_run(store)
        assert record.inputs["thing"] == "<Opaque 1>"
        assert record.outputs["things"] == ["<Opaque 1>", {"nested": "<Opaque 1>"}]

    def test_cyclic_value_is_stored_by_repr(self, store: dn.Store) -> None:
        """A cyclic structure does not crash anything; its repr is stored."""
        cyclic: list[object] = [1]
        cyclic.append(cyclic)
        with dn.run("r"), pytest.warns(RuntimeWarning, match="list value cannot be serialized"):
            dn.log_input("loop", cyclic)
        assert _only_run(store).inputs["loop"] == "[1, [...]]"

    def test_broken_repr_does_not_crash(self, store: dn.Store) -> None:
        """Even an object whose repr raises is recorded with a placeholder."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no repr")

        with dn.run("r"):
            dn.log_output("h", Hostile())
        assert _only_run(store).outputs["h"].startswith("<unrepresentable")


class TestOutsideARun:
    def test_logging_outside_a_run_warns_once_and_does_nothing(self, store: dn.Store) -> None:
        """Logging with no run open warns once per call kind, writes nothing and returns."""
        with pytest.warns(dn.NoRunWarning, match="log_metric"):
            dn.log_metric("m", 1)
        dn.log_metric("m", 2)  # no second warning: filterwarnings=error would fail here
        with pytest.warns(dn.NoRunWarning, match="log_param"):
            dn.log_param("p", 1)
        assert store.runs() == []

    def test_push_update_outside_a_run_warns(self) -> None:
        """push_update() outside a run warns instead of failing."""
        with pytest.warns(dn.NoRunWarning, match="push_update"):
            dn.push_update()


class TestValues:
    def test_inputs_outputs_params_round_trip(self, store: dn.Store) -> None:
        """Inputs, outputs and params read back equal to what was logged."""
        value = {"a": [1, 2.5, None, True], "b": "text", "c": b"\x00\x01"}
        with dn.run("r"):
            dn.log_inputs(prompt="hi", config=value)
            dn.log_outputs({"answer": 42})
            dn.log_params(lr=0.1, layers=[64, 32])
        record = _only_run(store)
        assert record.inputs == {"prompt": "hi", "config": value}
        assert record.outputs == {"answer": 42}
        assert record.params == {"lr": 0.1, "layers": [64, 32]}

    def test_large_values_are_stored_once_by_hash(
        self, store: dn.Store, store_dir: Path, memory: dn.MemorySink
    ) -> None:
        """A large value travels as a hash reference and is written once as an object."""
        dn.configure(sinks=[memory, dn.LocalStore()], provenance=False)  # no package list
        big = "x" * (INLINE_MAX_BYTES * 4)
        with dn.run("r"):
            dn.log_input("doc", big)
            dn.log_input("doc_again", big)
        first, second = memory.of_type(Input)
        assert first.value is None
        assert first.ref is not None
        assert first.ref == second.ref
        objects = [p for p in (store_dir / "objects").rglob("*") if p.is_file()]
        assert len(objects) == 1
        assert _only_run(store).inputs == {"doc": big, "doc_again": big}


class TestArtifacts:
    def test_file_and_directory_artifacts(self, store: dn.Store, tmp_path: Path) -> None:
        """Files and directories are stored by content and can be read back."""
        model = tmp_path / "model.bin"
        model.write_bytes(b"weights")
        folder = tmp_path / "checkpoint"
        (folder / "sub").mkdir(parents=True)
        (folder / "a.txt").write_text("A")
        (folder / "sub" / "b.txt").write_text("B")
        with dn.run("r"):
            dn.log_artifact(model)
            dn.log_artifact(str(folder), name="ckpt")
        artifacts = {a.name: a for a in _only_run(store).artifacts}
        assert artifacts["model.bin"].object_path().read_bytes() == b"weights"
        ckpt = artifacts["ckpt"]
        assert ckpt.is_dir
        assert {f.path: ckpt.object_path(f).read_text() for f in ckpt.files} == {
            "a.txt": "A",
            "sub/b.txt": "B",
        }

    @pytest.mark.anyio
    async def test_artifact_in_an_async_run(self, store: dn.Store, tmp_path: Path) -> None:
        """An artifact logged in ``async with`` is stored, on asyncio and on trio alike.

        The runtime hashes it on a worker thread of its own asyncio loop, whatever library
        the caller runs under (trio's context once made that fail).
        """
        model = tmp_path / "model.bin"
        model.write_bytes(b"weights")
        async with dn.run("r"):
            dn.log_artifact(model)
        (artifact,) = _only_run(store).artifacts
        assert artifact.object_path().read_bytes() == b"weights"
        assert _only_run(store).errors == []

    def test_runs_storing_one_object_at_once(self, store: dn.Store) -> None:
        """Many runs flushing the same large value at once store it once, without retries."""
        big = "x" * (INLINE_MAX_BYTES * 4)
        barrier = threading.Barrier(8)

        def work(index: int) -> None:
            with dn.run(f"r{index}", provenance=False):
                dn.log_input("doc", big)
                barrier.wait()

        with structlog.testing.capture_logs() as logs:
            threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert [entry for entry in logs if entry["log_level"] != "debug"] == []
        assert len([p for p in store.layout.objects.rglob("*") if p.is_file()]) == 1
        assert {record.inputs["doc"] for record in store.runs()} == {big}

    def test_artifact_that_vanishes_is_an_error_not_a_crash(
        self, store: dn.Store, tmp_path: Path
    ) -> None:
        """A file deleted before the runtime hashes it is recorded as an error; the run finishes."""
        doomed = tmp_path / "doomed.txt"
        doomed.write_text("soon gone")
        dn.configure(flush_interval=3600)  # only the run's end resolves the artifact
        with dn.run("r"):
            dn.log_artifact(doomed)
            doomed.unlink()
            dn.log_metric("after", 1)
        record = _only_run(store)
        assert record.status == "finished"
        assert record.metrics["after"][0].value == 1.0
        assert [e.type for e in record.errors] == ["ArtifactMissing"]
        assert record.artifacts == []
