"""A run's manifest: its identity, status and summary, readable without its segments."""

from __future__ import annotations

from typing import Any

import msgspec

from strikes.events import SCHEMA_VERSION, Provenance
from strikes.runtime.state import MetricSummary, RunState

__all__ = ["Manifest", "decode_manifest", "encode_manifest", "manifest_from_state"]


class Manifest(msgspec.Struct, kw_only=True):
    """The summary the owning writer keeps next to a run's segments."""

    schema: int = SCHEMA_VERSION
    id: str
    name: str = ""
    project: str = ""
    status: str = "running"
    error: str | None = None
    tags: list[str] = []
    attributes: dict[str, Any] = {}
    params: dict[str, Any] = {}
    metrics: dict[str, MetricSummary] = {}
    started_at: int = 0
    ended_at: int | None = None
    last_seen: int = 0
    events: int = 0
    tasks: int = 0
    pid: int = 0
    host: str = ""
    stats: dict[str, int] = {}
    provenance: Provenance | None = None
    """Where the run came from, once the owner captured it (``None`` before, or when off)."""
    heartbeat: float = 0.0
    """Seconds between the owner's heartbeats while the run is open (0: none are sent)."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Manifest)


def manifest_from_state(state: RunState, *, pid: int, host: str) -> Manifest:
    """Build the manifest for ``state`` as it is now."""
    return Manifest(
        id=state.run_id,
        name=state.name,
        project=state.project,
        status=state.status,
        error=state.error,
        tags=list(state.tags),
        attributes=state.attributes,
        params=state.params,
        metrics=state.metrics,
        started_at=state.started_at,
        ended_at=state.ended_at,
        last_seen=state.last_seen,
        events=state.events,
        tasks=state.tasks,
        pid=pid,
        host=host,
        stats=state.stats,
        provenance=state.provenance,
        heartbeat=state.heartbeat,
    )


def encode_manifest(manifest: Manifest) -> bytes:
    """Encode a manifest as JSON (NaN and infinities become ``null``)."""
    return _encoder.encode(manifest)


def decode_manifest(data: bytes) -> Manifest:
    """Decode a manifest; raises ``msgspec.DecodeError`` or ``ValidationError`` on bad data."""
    return _decoder.decode(data)
