"""The event schema: a tagged union that round-trips, with fixed positional layout."""

from __future__ import annotations

import msgspec
import pytest

from strikes import events
from strikes.events import (
    SCHEMA_VERSION,
    Artifact,
    ArtifactFile,
    Error,
    Input,
    Metric,
    Output,
    Param,
    Provenance,
    RunFinished,
    RunProvenance,
    RunStarted,
    Tag,
    TaskFinished,
    TaskStarted,
    decode_events,
    encode_events,
)

RUN = "0" * 31 + "1"
SPAN = "a" * 16

EXAMPLES = [
    RunStarted(RUN, SPAN, "", 0, 1, "name", "project", ("t",), {"k": "v"}, pid=7, host="h"),
    TaskStarted(RUN, "b" * 16, SPAN, 1, 2, "Task", "task", (), {}),
    Param(RUN, SPAN, "", 2, 3, "lr", 0.1),
    Metric(RUN, SPAN, "", 3, 4, "loss", 0.5, 2, {"split": "val"}),
    Tag(RUN, SPAN, "", 4, 5, ("x", "y")),
    Input(RUN, SPAN, "", 5, 6, "prompt", "hi", None, "str"),
    Output(RUN, SPAN, "", 6, 7, "big", None, "f" * 64, "str"),
    Artifact(RUN, SPAN, "", 7, 8, "model", "/tmp/m", False, (ArtifactFile("m", "e" * 64, 3),)),
    Error(RUN, SPAN, "", 8, 9, "ValueError", "bad", "Traceback..."),
    TaskFinished(RUN, "b" * 16, SPAN, 9, 10, True, "ValueError: bad"),
    RunFinished(RUN, SPAN, "", 10, 11, "failed", "ValueError: bad", {"dropped": 0}),
    RunProvenance(
        RUN, SPAN, "", 11, 12, Provenance(git_commit="c" * 40, git_dirty=True, env={"RANK": "0"})
    ),
]


class TestUnion:
    def test_every_kind_round_trips(self) -> None:
        """Every event kind encodes and decodes to an equal event."""
        assert decode_events(encode_events(EXAMPLES)) == EXAMPLES

    def test_kinds_are_tagged_and_positional(self) -> None:
        """An event encodes as an array: its kind, then the common fields, then its own."""
        decoded = msgspec.msgpack.decode(encode_events([EXAMPLES[3]]))
        assert decoded == [["metric", RUN, SPAN, "", 3, 4, "loss", 0.5, 2, {"split": "val"}]]

    def test_common_fields_lead_every_kind(self) -> None:
        """run_id, span_id, parent_id, seq and ts are the first fields of every kind."""
        for event in EXAMPLES:
            assert event.__struct_fields__[:5] == ("run_id", "span_id", "parent_id", "seq", "ts")

    def test_events_are_frozen(self) -> None:
        """Events cannot be changed after they are made."""
        with pytest.raises(AttributeError):
            EXAMPLES[3].value = 1.0  # type: ignore[misc]

    def test_bad_data_raises_decode_error(self) -> None:
        """Bytes that are not a msgpack array are refused with msgspec's DecodeError."""
        with pytest.raises(msgspec.DecodeError):
            decode_events(b"\xc1")
        with pytest.raises(msgspec.DecodeError):
            decode_events(msgspec.msgpack.encode("not a list"))

    def test_malformed_event_in_a_batch_is_skipped(self) -> None:
        """One malformed event does not hide the others of its batch."""
        batch = msgspec.msgpack.encode(
            [["metric", "too", "short"], ["tag", RUN, SPAN, "", 1, 2, ["a"]]]
        )
        assert decode_events(batch) == [Tag(RUN, SPAN, "", 1, 2, ("a",))]

    def test_schema_version_is_recorded(self) -> None:
        """RunStarted carries the schema version by default."""
        assert EXAMPLES[0].schema == SCHEMA_VERSION == 2


def test_all_names_are_exported() -> None:
    """events.__all__ lists exactly the public names defined there."""
    public = {name for name in vars(events) if not name.startswith("_")}
    imported = {"annotations", "Any", "msgspec"}
    assert set(events.__all__) == public - imported


def test_provenance_is_a_map_inside_the_array() -> None:
    """The provenance record inside its event encodes as a map that leaves out empty fields.

    A map, not a positional array: fields can be added to it in any release and an older
    reader ignores the ones it does not know.
    """
    event = RunProvenance(RUN, SPAN, "", 1, 2, Provenance(git_commit="c" * 40))
    decoded = msgspec.msgpack.decode(encode_events([event]))
    assert decoded == [["provenance", RUN, SPAN, "", 1, 2, {"git_commit": "c" * 40}]]
    newer = msgspec.msgpack.encode(
        [["provenance", RUN, SPAN, "", 1, 2, {"git_commit": "c" * 40, "gpu_driver": "550"}]]
    )
    assert decode_events(newer) == [event]


def test_unknown_kinds_from_a_newer_writer_are_skipped() -> None:
    """A batch holding a kind this release does not know still yields the known events."""
    future = msgspec.msgpack.encode(["from_the_future", RUN, SPAN, "", 99, 1, "extra"])
    known = encode_events([EXAMPLES[3]])
    mixed = b"\x92" + future + known[1:]  # a two-element array: the unknown event, then a metric
    assert decode_events(mixed) == [EXAMPLES[3]]
