"""Human-readable live output of what runs record, through structlog."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog

from strikes.events import Event, RunProvenance
from strikes.sinks.base import Batch, Sink

__all__ = ["ConsoleSink"]

_SKIP = frozenset({"run_id", "seq", "ts", "parent_id"})


class ConsoleSink(Sink):
    """Logs each event as one structlog line (``metrics=False`` leaves metrics out)."""

    def __init__(
        self,
        *,
        logger: Any = None,
        metrics: bool = True,
    ) -> None:
        self._logger = logger if logger is not None else structlog.get_logger("strikes")
        self._metrics = metrics

    async def write(self, batch: Batch) -> None:
        """Log every event of the batch."""
        log = self._logger.bind(run_id=batch.run_id)
        for event in batch.events:
            kind = event.__struct_config__.tag
            if kind == "metric" and not self._metrics:
                continue
            log.info(str(kind), **self._fields(event))

    @staticmethod
    def _fields(event: Event) -> dict[str, Any]:
        fields = msgspec.structs.asdict(event)
        if type(event) is RunProvenance:  # one level: git_commit=..., hostname=...
            fields.update(msgspec.structs.asdict(fields.pop("provenance")))
        return {k: v for k, v in fields.items() if k not in _SKIP and v not in (None, (), {})}
