"""Property tests: events round-trip through encoding and the store; any cut reads a prefix."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from strikes.events import (
    Artifact,
    ArtifactFile,
    Error,
    Event,
    Input,
    Metric,
    Output,
    Param,
    RunFinished,
    RunStarted,
    Tag,
    TaskFinished,
    TaskStarted,
    decode_events,
    encode_events,
)
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch
from strikes.sinks.local import LocalStore
from strikes.store.layout import StoreLayout
from strikes.store.reader import read_run_events
from strikes.store.segments import MAGIC, ReadReport, frame, iter_frames

RUN_ID = "0123456789abcdef" * 2
WRITER = "w-property"
PROFILE = settings(max_examples=60, deadline=None)
STORE_PROFILE = settings(max_examples=25, deadline=None)  # each example writes files

hex16 = st.text("0123456789abcdef", min_size=16, max_size=16)
names = st.text(max_size=40)
u63 = st.integers(0, 2**63 - 1)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
attributes = st.dictionaries(st.text(max_size=8), values, max_size=3)
tags = st.lists(names, max_size=3).map(tuple)


def _event(cls: type[Event], **own: st.SearchStrategy[Any]) -> st.SearchStrategy[Event]:
    return st.builds(
        cls,
        run_id=st.just(RUN_ID),
        span_id=hex16,
        parent_id=st.just("") | hex16,
        seq=u63,
        ts=u63,
        **own,
    )


events = st.one_of(
    _event(
        RunStarted,
        name=names,
        project=names,
        tags=tags,
        attributes=attributes,
        pid=st.integers(0, 2**31),
        host=names,
    ),
    _event(
        RunFinished,
        status=st.sampled_from(["finished", "failed"]),
        error=st.none() | names,
        stats=st.dictionaries(names, u63, max_size=3),
    ),
    _event(TaskStarted, name=names, label=names, tags=tags, attributes=attributes),
    _event(TaskFinished, failed=st.booleans(), error=st.none() | names),
    _event(Param, name=names, value=values),
    _event(
        Metric,
        name=names,
        value=st.floats(),
        step=st.integers(-(2**63), 2**63 - 1),
        attributes=st.none() | attributes,
    ),
    _event(Tag, tags=tags),
    _event(Input, name=names, value=values, ref=st.none() | names, type_name=names),
    _event(Output, name=names, value=values, ref=st.none() | names, type_name=names),
    _event(
        Artifact,
        name=names,
        source=names,
        is_dir=st.booleans(),
        files=st.lists(st.builds(ArtifactFile, path=names, hash=names, size=u63), max_size=3).map(
            tuple
        ),
    ),
    _event(Error, type=names, message=names, traceback=names),
)
batches = st.lists(st.lists(events, min_size=1, max_size=6), min_size=1, max_size=5)


def _same(left: list[Event], right: list[Event]) -> bool:
    """Equal event lists, NaN included (NaN != NaN, so compare the encodings)."""
    return [type(e) for e in left] == [type(e) for e in right] and encode_events(
        left
    ) == encode_events(right)


def _write(root: Path, groups: list[list[Event]]) -> Path:
    """Write each group as one batch through the local store; return the segment file."""
    store = LocalStore(root)

    async def write() -> None:
        async with store:
            for group in groups:
                state = RunState(RUN_ID, owner=False)
                await store.write(
                    Batch(run_id=RUN_ID, writer_id=WRITER, events=group, blobs=[], state=state)
                )

    asyncio.run(write())
    (segment,) = (root / "runs" / RUN_ID / "segments").iterdir()
    return segment


class TestRoundTrip:
    @PROFILE
    @given(st.lists(events, max_size=20))
    def test_any_events_survive_encode_and_decode(self, original: list[Event]) -> None:
        """decode(encode(events)) gives the same events, in order."""
        assert _same(decode_events(encode_events(original)), original)

    @STORE_PROFILE
    @given(batches)
    def test_any_events_survive_the_store(self, groups: list[list[Event]]) -> None:
        """Events written in batches through the local store read back the same, in order."""
        with tempfile.TemporaryDirectory() as directory:
            _write(Path(directory), groups)
            read = read_run_events(StoreLayout(directory), RUN_ID)
        assert _same(read, [event for group in groups for event in group])


class TestTruncation:
    @PROFILE
    @given(st.lists(st.binary(max_size=64), max_size=8), st.data())
    def test_any_cut_of_a_segment_reads_a_prefix_of_frames(
        self, payloads: list[bytes], data: st.DataObject
    ) -> None:
        """Cutting a segment anywhere yields exactly the frames wholly before the cut."""
        segment = MAGIC + b"".join(frame(p) for p in payloads)
        cut = data.draw(st.integers(0, len(segment)))
        report = ReadReport()
        read = [bytes(p) for p in iter_frames(segment[:cut], report)]
        ends, end = [], len(MAGIC)
        for payload in payloads:
            end += len(frame(payload))
            ends.append(end)
        assert read == [p for p, stop in zip(payloads, ends, strict=True) if stop <= cut]
        whole = len(MAGIC) if not read else ends[len(read) - 1]
        assert report.torn_bytes == (cut - whole if cut >= len(MAGIC) else cut)

    @STORE_PROFILE
    @given(batches, st.data())
    def test_any_cut_of_a_stored_run_reads_a_prefix_of_events(
        self, groups: list[list[Event]], data: st.DataObject
    ) -> None:
        """A segment file cut anywhere (a torn write) reads back whole batches, in order."""
        with tempfile.TemporaryDirectory() as directory:
            segment = _write(Path(directory), groups)
            content = segment.read_bytes()
            cut = data.draw(st.integers(0, len(content)))
            segment.write_bytes(content[:cut])
            read = read_run_events(StoreLayout(directory), RUN_ID)
        prefixes = [[e for group in groups[:k] for e in group] for k in range(len(groups) + 1)]
        assert any(_same(read, prefix) for prefix in prefixes)
