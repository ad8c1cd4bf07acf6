"""Turn user values into storable ones: builtins inline when small, else a content-hashed blob."""

from __future__ import annotations

import hashlib
import numbers
import warnings
from datetime import UTC, datetime
from typing import Any, NamedTuple

import msgspec

from strikes.events import Blob

INLINE_MAX_BYTES = 4096
"""Values whose encoding is larger than this are stored once, by hash, as objects."""

_KEEP_TYPES = (bytes, bytearray)
_encoder = msgspec.msgpack.Encoder()
_warned_types: set[str] = set()


class Snapshot(NamedTuple):
    """A value frozen at log time: inline ``value`` or a ``ref`` to ``blob``."""

    value: Any
    ref: str | None
    blob: Blob | None
    type_name: str


def _warn_repr(obj: object) -> str:
    """Fall back to ``repr`` for a value msgspec cannot encode, warning once per type."""
    type_name = type(obj).__qualname__
    if type_name not in _warned_types:
        _warned_types.add(type_name)
        warnings.warn(
            f"strikes: a {type_name} value cannot be serialized; it is stored by its repr",
            RuntimeWarning,
            stacklevel=2,
        )
    return repr(obj)


def _safe_repr(obj: object) -> str:
    try:
        return _warn_repr(obj)
    except Exception as exc:  # a broken __repr__ must not crash the caller
        return f"<unrepresentable {type(obj).__qualname__}: {exc!r}>"


def _enc_hook(obj: object) -> Any:
    return _safe_repr(obj)


def to_builtins(value: Any) -> Any:
    """Convert ``value`` to msgpack-able builtins; unknown objects become their ``repr``."""
    try:
        return msgspec.to_builtins(value, builtin_types=_KEEP_TYPES, enc_hook=_enc_hook)
    except (RecursionError, ValueError, TypeError, OverflowError):
        # Cycles, excessive depth, ints beyond 64 bits: keep a readable trace instead.
        return _safe_repr(value)


def snapshot(value: Any) -> Snapshot:
    """Freeze ``value`` for an input, output or param event."""
    type_name = type(value).__qualname__
    built = to_builtins(value)
    kind = type(built)
    if kind in (int, float, bool) or built is None:
        return Snapshot(built, None, None, type_name)
    if kind is str and len(built) <= INLINE_MAX_BYTES // 4:
        return Snapshot(built, None, None, type_name)
    data = _encoder.encode(built)
    if len(data) <= INLINE_MAX_BYTES:
        return Snapshot(built, None, None, type_name)
    digest = hashlib.sha256(data).hexdigest()
    return Snapshot(None, digest, Blob(digest, data), type_name)


def load_blob(data: bytes) -> Any:
    """Decode a value blob written by :func:`snapshot`."""
    return msgspec.msgpack.decode(data)


def metric_value(value: object) -> float:
    """Coerce a metric value to ``float``; raises ``TypeError`` naming ``value``."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[return-value]
    if kind is int or kind is bool:
        return float(value)  # type: ignore[arg-type]
    if isinstance(value, numbers.Real):  # numpy scalars, Fraction, Decimal-like reals
        return float(value)
    if hasattr(value, "__float__") and not isinstance(value, (str, bytes)):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"metric value must be a real number, got {kind.__qualname__}: {value!r:.80}")


class MetricPoint(msgspec.Struct, frozen=True, gc=False):
    """One logged value of a metric: ``value``, ``step`` and ``ts`` (ns since the epoch)."""

    value: float
    step: int = 0
    ts: int = 0

    @property
    def timestamp(self) -> datetime:
        """When the point was logged, as an aware UTC datetime."""
        return datetime.fromtimestamp(self.ts / 1e9, tz=UTC)
