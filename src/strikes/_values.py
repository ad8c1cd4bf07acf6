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
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what msgpack can hold
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


def _int_text(number: int) -> str:
    """Decimal text of an int msgpack cannot hold; hex past Python's int-to-str limit."""
    try:
        return str(number)
    except ValueError:  # more digits than sys.get_int_max_str_digits() allows
        return hex(number)


def _fit_ints(value: Any) -> Any:
    """Replace ints outside msgpack's 64-bit range by their text, anywhere in ``value``."""
    kind = type(value)
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else _int_text(value)
    if kind is list:
        return [_fit_ints(item) for item in value]
    if kind is dict:
        return {_fit_ints(key): _fit_ints(item) for key, item in value.items()}
    return value


def _encode_fitted(built: Any) -> tuple[Any, bytes]:
    """Encode ``built``; ints beyond 64 bits (rare) are first turned into text."""
    try:
        return built, _encoder.encode(built)
    except OverflowError:
        built = _fit_ints(built)
        return built, _encoder.encode(built)


def _builtins(value: Any) -> Any:
    try:
        return msgspec.to_builtins(value, builtin_types=_KEEP_TYPES, enc_hook=_enc_hook)
    except (RecursionError, ValueError, TypeError, OverflowError):
        # Cycles, excessive depth: keep a readable trace instead.
        return _safe_repr(value)


def to_builtins(value: Any) -> Any:
    """Convert ``value`` to msgpack-able builtins.

    Unknown objects become their ``repr``; ints beyond 64 bits become their decimal text.
    """
    built = _builtins(value)
    kind = type(built)
    if kind is int:
        return built if _INT_MIN <= built <= _INT_MAX else _int_text(built)
    if kind is list or kind is dict:
        return _encode_fitted(built)[0]
    return built


def snapshot(value: Any) -> Snapshot:
    """Freeze ``value`` for an input, output or param event."""
    type_name = type(value).__qualname__
    built = _builtins(value)
    kind = type(built)
    if kind is int and not _INT_MIN <= built <= _INT_MAX:
        return Snapshot(_int_text(built), None, None, type_name)
    if kind in (int, float, bool) or built is None:
        return Snapshot(built, None, None, type_name)
    if kind is str and len(built) <= INLINE_MAX_BYTES // 4:
        return Snapshot(built, None, None, type_name)
    built, data = _encode_fitted(built)
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
