"""The local store on disk: layout, permissions, torn and corrupt segments, lost manifests."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import strikes as dn
from strikes.events import Metric, encode_events
from strikes.store.layout import StoreLayout
from strikes.store.segments import MAGIC, ReadReport, frame, iter_frames


def _segment(store: dn.Store, run_id: str) -> Path:
    (segment,) = (store.path / "runs" / run_id / "segments").iterdir()
    return segment


def _logged_run(batches: int = 5, per_batch: int = 10) -> dn.Run:
    dn.configure(batch_size=per_batch, flush_interval=3600)
    with dn.run("torn") as run:
        for i in range(batches * per_batch):
            dn.log_metric("m", i, step=i)
            if i % per_batch == per_batch - 1:
                dn.push_update()
    return run


class TestLayout:
    def test_directories_and_files_are_private(self, store: dn.Store) -> None:
        """Store directories are 0700 and files 0600."""
        with dn.run("private") as run:
            dn.log_output("big", "x" * 100_000)
        run_dir = store.path / "runs" / run.run_id
        for path in [store.path, run_dir, run_dir / "segments"]:
            assert stat.S_IMODE(path.stat().st_mode) == 0o700
        files = [run_dir / "manifest.json", _segment(store, run.run_id)]
        files += [p for p in (store.path / "objects").rglob("*") if p.is_file()]
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_store_dir_from_configure(self, tmp_path: Path) -> None:
        """configure(dir=...) moves the store."""
        target = tmp_path / "elsewhere"
        dn.configure(dir=target)
        with dn.run("moved"):
            pass
        assert [r.name for r in dn.open_store(target).runs()] == ["moved"]

    def test_hostile_ids_never_become_paths(self, tmp_path: Path) -> None:
        """Run ids and object hashes that are not hex never reach the file system."""
        layout = StoreLayout(tmp_path)
        for bad in ["../../etc", "/abs", "a" * 31, "A" * 32, "0" * 31 + "\x00"]:
            with pytest.raises(ValueError, match="run_id"):
                layout.run_dir(bad)
            with pytest.raises(ValueError, match="object hash"):
                layout.object(bad)
        with pytest.raises(KeyError):
            dn.open_store(tmp_path).run("0" * 32)

    def test_names_never_reach_paths(self, store: dn.Store) -> None:
        """Path-like run, project and metric names are only data: nothing is written outside."""
        hostile = "../../escape"
        with dn.run(hostile, project="/etc/passwd", tags=["../t"]):
            dn.log_metric(hostile, 1)
            dn.log_param(hostile, hostile)
        (record,) = store.runs()
        assert (record.name, record.project, record.params) == (
            hostile,
            "/etc/passwd",
            {hostile: hostile},
        )
        assert sorted(p.name for p in store.path.iterdir()) == ["objects", "runs"]


class TestTornSegments:
    def test_every_truncation_reads_back_a_prefix(self, store: dn.Store) -> None:
        """Cutting the segment at any byte loses at most the frame that was cut, never more."""
        run = _logged_run()
        segment = _segment(store, run.run_id)
        data = segment.read_bytes()
        full = [p.step for p in store.run(run.run_id).metrics["m"]]
        seen_lengths = set()
        for cut in range(len(data)):
            segment.write_bytes(data[:cut])
            steps = [p.step for p in store.run(run.run_id).metrics.get("m", [])]
            assert steps == full[: len(steps)]
            seen_lengths.add(len(steps))
        assert seen_lengths >= {0, 10, 20, 30, 40}

    def test_torn_tail_is_reported(self, store: dn.Store) -> None:
        """A half-written last frame is skipped and counted in stats['torn_bytes']."""
        run = _logged_run()
        segment = _segment(store, run.run_id)
        with segment.open("ab") as handle:
            handle.write(frame(b"\x93\x01\x02\x03")[:-2])
        record = store.run(run.run_id)
        assert len(record.metrics["m"]) == 50
        assert record.stats["torn_bytes"] == 10

    def test_corrupt_frame_in_the_middle_is_skipped(self) -> None:
        """A frame whose checksum fails is skipped; the frames after it still read."""
        payloads = [
            encode_events([Metric("r" * 32, "s" * 16, "", i, 0, "m", float(i))]) for i in range(3)
        ]
        data = bytearray(MAGIC + b"".join(frame(p) for p in payloads))
        data[len(MAGIC) + 8 + 3] ^= 0xFF  # flip a byte inside the first payload
        report = ReadReport()
        frames = list(iter_frames(bytes(data), report))
        assert [bytes(f) for f in frames] == payloads[1:]
        assert report.corrupt_frames == 1

    def test_foreign_file_is_not_read(self) -> None:
        """A file without the segment magic is reported, not decoded."""
        report = ReadReport()
        assert list(iter_frames(b"not a segment at all", report)) == []
        assert report.bad_header


class TestManifest:
    def test_lost_manifest_is_rebuilt_from_segments(self, store: dn.Store) -> None:
        """Without its manifest a run is still listed and read, from its segments."""
        with dn.run("orphan", tags=["x"]) as run:
            dn.log_metric("m", 1)
        os.remove(store.path / "runs" / run.run_id / "manifest.json")
        (record,) = store.runs()
        assert (record.name, record.status, record.tags) == ("orphan", "finished", ["x"])
        assert record.metrics["m"][0].value == 1.0

    def test_manifest_summarises_metrics(self, store: dn.Store) -> None:
        """The manifest keeps count, last, min and max of each run metric."""
        import json

        with dn.run("summary") as run:
            for value in (3, 1, 2):
                dn.log_metric("m", value, step=value)
        manifest = json.loads((store.path / "runs" / run.run_id / "manifest.json").read_text())
        assert manifest["metrics"]["m"] == {
            "count": 3,
            "last": 2.0,
            "last_step": 2,
            "min": 1.0,
            "max": 3.0,
        }
        assert manifest["status"] == "finished"

    def test_manifest_summarises_task_metrics_as_mirrored(self, store: dn.Store) -> None:
        """A task's metrics are summarised under <label>.<name>, as the run's metrics read."""

        @dn.task(scorers=[lambda output: output / 10])
        def judge(value: int) -> int:
            dn.log_metric("seen", value)
            return value

        with dn.run("tasks") as run:
            for value in (3, 1, 2):
                judge(value)
            with dn.task_span("Outer Step"), dn.task_span("inner"):
                dn.log_metric("depth", 2)
        record = store.run(run.run_id)
        summaries = record.manifest.metrics
        assert set(summaries) == set(record.metrics) == {
            "judge.seen",
            "judge.<lambda>",
            "inner.depth",
        }
        assert summaries["judge.seen"].count == 3
        assert summaries["judge.seen"].last == 2.0
        assert (summaries["judge.seen"].min, summaries["judge.seen"].max) == (1.0, 3.0)
        assert summaries["judge.<lambda>"].max == 0.3
        assert summaries["inner.depth"].last == 2.0

    def test_running_run_shows_as_running(self, store: dn.Store) -> None:
        """A reader sees an open run as running, with what was flushed."""
        with dn.run("live") as run:
            dn.log_metric("m", 1)
            dn.push_update()
            record = store.run(run.run_id)
            assert record.status == "running"
            assert record.ended_at is None
            assert record.last_seen is not None
