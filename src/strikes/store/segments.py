"""The segment file format: a magic header, then length- and checksum-prefixed frames.

Each frame holds one batch (a msgpack array of events). A frame whose bytes are cut
short (a writer killed mid-write) ends the readable part of the file; a frame whose
checksum does not match is skipped. Neither is ever fatal to a reader.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = ["FRAME_HEADER", "MAGIC", "ReadReport", "frame", "iter_frames"]

MAGIC = b"STRKSEG\x01"
"""The first bytes of every segment file (format version 1)."""
FRAME_HEADER = struct.Struct("<II")
"""Each frame starts with the payload length and its CRC-32."""


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in a frame."""
    return FRAME_HEADER.pack(len(payload), zlib.crc32(payload)) + payload


@dataclass
class ReadReport:
    """What a reader met in one segment besides good frames."""

    frames: int = 0
    torn_bytes: int = 0
    corrupt_frames: int = 0
    bad_header: bool = False
    notes: list[str] = field(default_factory=list)


def iter_frames(data: bytes, report: ReadReport | None = None) -> Iterator[memoryview]:
    """Yield each intact frame's payload from a whole segment file's bytes."""
    report = report if report is not None else ReadReport()
    if not data:
        return
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):  # the header itself was torn
            report.torn_bytes = len(data)
            return
        report.bad_header = True
        report.notes.append("not a strikes segment")
        return
    view = memoryview(data)
    offset = len(MAGIC)
    end = len(data)
    header_size = FRAME_HEADER.size
    while offset < end:
        if offset + header_size > end:
            report.torn_bytes = end - offset
            return
        length, checksum = FRAME_HEADER.unpack_from(data, offset)
        start = offset + header_size
        stop = start + length
        if stop > end:
            report.torn_bytes = end - offset
            return
        payload = view[start:stop]
        offset = stop
        if zlib.crc32(payload) != checksum:
            report.corrupt_frames += 1
            continue
        report.frames += 1
        yield payload
