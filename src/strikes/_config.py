"""Settings: ``configure()`` and the ``STRIKES_*`` environment variables it falls back on."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from strikes._provenance import ProvenanceOptions
from strikes.runtime.actor import DeliveryPolicy
from strikes.runtime.mailbox import BACKPRESSURE_POLICIES, Backpressure
from strikes.sinks.base import Sink
from strikes.sinks.console import ConsoleSink
from strikes.sinks.local import LocalStore

__all__ = [
    "Settings",
    "configure",
    "get_settings",
    "resolve_provenance",
    "resolve_system_metrics",
]

T = TypeVar("T")

DEFAULT_PROJECT = "Default"
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAILBOX_SIZE = 10_000
MAX_BATCH_FACTOR = 8
"""Without ``max_batch_size``, a batch grows to this many times ``batch_size`` when behind."""
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_SYSTEM_METRICS_INTERVAL = 5.0
_PROVENANCE_PARTS = ("git", "diff", "command", "python", "packages", "env")
_DEFAULT_PROVENANCE: ProvenanceOptions | None = ProvenanceOptions()
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a new run is made with; runs keep the settings they started with."""

    project: str
    dir: Path
    sinks: tuple[Sink, ...]
    flush_interval: float
    batch_size: int
    mailbox_size: int
    backpressure: Backpressure
    delivery: DeliveryPolicy
    mask_secrets: bool = True
    """Params whose names look like secrets are stored as ``"***"``."""
    spool: bool = True
    """Batches a sink gives up on are kept under ``<dir>/spool`` for ``resend_spool()``."""
    provenance: ProvenanceOptions | None = _DEFAULT_PROVENANCE
    """What provenance each run captures at start; ``None`` captures nothing."""
    system_metrics: float | None = None
    """Seconds between system-metric samples; ``None`` samples nothing."""
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    """Seconds of silence after which an open run's owner says it is alive (0: never)."""
    max_batch_size: int = 0
    """The most events a batch takes when the actor is behind (0: ``batch_size``)."""


def _env(name: str, parse: Callable[[str], T], default: T) -> T:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return parse(raw.strip())
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is invalid: {exc}") from None


def _parse_bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _check_project(project: object) -> str:
    if not isinstance(project, str):
        raise TypeError(f"project must be a str, got {type(project).__qualname__}")
    if not project.strip():
        raise ValueError("project must not be empty")
    if len(project) > 256 or "\x00" in project:
        raise ValueError(f"project must be at most 256 characters, without NUL: {project!r:.80}")
    return project


def _check_positive_int(name: str, value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"{name} must be an int, got {type(value).__qualname__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


def _check_interval(value: object, name: str = "flush_interval", *, zero: bool = False) -> float:
    if type(value) not in (int, float):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__qualname__}")
    seconds = float(cast("float", value))
    if not ((seconds > 0 or (zero and seconds == 0)) and math.isfinite(seconds)):
        at_least = "a non-negative" if zero else "a positive"
        raise ValueError(f"{name} must be {at_least}, finite number of seconds, got {value}")
    return seconds


def _parse_provenance(raw: str) -> ProvenanceOptions | None:
    """``1``/``0`` (and the other flag words), or the parts to capture: ``git,python``."""
    lowered = raw.lower()
    if lowered in _TRUE:
        return ProvenanceOptions()
    if lowered in _FALSE:
        return None
    parts = {part.strip() for part in lowered.split(",") if part.strip()}
    unknown = parts.difference(_PROVENANCE_PARTS)
    if unknown:
        raise ValueError(
            f"expected on/off or parts to capture from {', '.join(_PROVENANCE_PARTS)}; "
            f"unknown: {', '.join(sorted(unknown))}"
        )
    return ProvenanceOptions(
        git="git" in parts or "diff" in parts,
        git_diff="diff" in parts,
        command="command" in parts,
        python="python" in parts,
        packages="packages" in parts,
        env="env" in parts,
    )


def _parse_system_metrics(raw: str) -> float | None:
    """A flag word, or the seconds between samples."""
    lowered = raw.lower()
    if lowered in _TRUE:
        return DEFAULT_SYSTEM_METRICS_INTERVAL
    if lowered in _FALSE:
        return None
    seconds = float(raw)
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError("expected on/off or a positive number of seconds")
    return seconds


def resolve_provenance(
    value: object, default: ProvenanceOptions | None
) -> ProvenanceOptions | None:
    """``provenance=`` of ``configure()``/``run()``: ``None`` keeps ``default``; a bool; options."""
    if value is None:
        return default
    if value is True:
        return default if default is not None else ProvenanceOptions()
    if value is False:
        return None
    if isinstance(value, ProvenanceOptions):
        return value
    raise TypeError(
        f"provenance must be a bool or a ProvenanceOptions, got {type(value).__qualname__}"
    )


def resolve_system_metrics(value: object, default: float | None) -> float | None:
    """``system_metrics=``: ``None`` keeps ``default``, a bool, or seconds between samples.

    Raises ``ImportError`` naming the extra when sampling is on and psutil is missing.
    """
    if value is None:
        interval = default
    elif value is True:
        interval = default if default is not None else DEFAULT_SYSTEM_METRICS_INTERVAL
    elif value is False:
        interval = None
    elif type(value) in (int, float):
        interval = _check_interval(value, "system_metrics")
    else:
        raise TypeError(
            "system_metrics must be a bool or a number of seconds between samples, got "
            f"{type(value).__qualname__}"
        )
    if interval is not None:
        from strikes._sysmetrics import _import_psutil  # noqa: PLC0415 - only when asked

        _import_psutil()
    return interval


def _check_backpressure(value: object) -> Backpressure:
    if value not in BACKPRESSURE_POLICIES:
        raise ValueError(
            f"backpressure must be one of {', '.join(BACKPRESSURE_POLICIES)}; got {value!r}"
        )
    return value


def _check_flag(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise TypeError(f"{name} must be a bool, got {type(value).__qualname__}")
    return value


def _check_sinks(sinks: Iterable[Sink], directory: Path) -> tuple[Sink, ...]:
    if isinstance(sinks, Sink) or not isinstance(sinks, Iterable):
        raise TypeError("sinks must be a list of Sink instances")
    checked = tuple(sinks)
    for sink in checked:
        if not isinstance(sink, Sink):
            raise TypeError(f"sinks must hold Sink instances, got {type(sink).__qualname__}")
        if isinstance(sink, LocalStore):
            sink._bind_default(directory)
    return checked


def configure(
    *,
    project: str | None = None,
    sinks: Iterable[Sink] | None = None,
    dir: str | os.PathLike[str] | None = None,  # noqa: A002 - the documented name
    flush_interval: float | None = None,
    batch_size: int | None = None,
    mailbox_size: int | None = None,
    backpressure: Backpressure | None = None,
    console: bool | None = None,
    delivery: DeliveryPolicy | None = None,
    mask_secrets: bool | None = None,
    spool: bool | None = None,
    provenance: bool | ProvenanceOptions | None = None,
    system_metrics: bool | float | None = None,
    heartbeat_interval: float | None = None,
    max_batch_size: int | None = None,
) -> Settings:
    """Set how new runs record; every argument left out takes its environment or default value.

    ``sinks`` replaces the default local store (add ``LocalStore()`` to keep it);
    ``console=True`` adds a :class:`ConsoleSink`. ``provenance`` (default on) is ``False``
    or a :class:`ProvenanceOptions` choosing the parts; ``system_metrics`` (default off)
    is ``True`` or the seconds between samples (needs ``strikes[system]``);
    ``heartbeat_interval`` is how often a silent open run says it is alive (0: never).
    A batch is cut at ``batch_size`` events; when the actor is behind by several batches
    it delivers up to ``max_batch_size`` (default ``8 * batch_size``) at once, fewer
    writes per event; set it to ``batch_size`` for sinks that need a hard cap.
    Raises ``TypeError``/``ValueError`` naming the bad argument (or environment
    variable), ``ImportError`` when system metrics are asked for without psutil.
    Returns the new settings.
    """
    project = _check_project(
        project if project is not None else _env("STRIKES_PROJECT", str, DEFAULT_PROJECT)
    )
    directory = Path(dir) if dir is not None else Path(_env("STRIKES_DIR", str, "") or ".strikes")
    interval = _check_interval(
        flush_interval
        if flush_interval is not None
        else _env("STRIKES_FLUSH_INTERVAL", float, DEFAULT_FLUSH_INTERVAL)
    )
    batch = _check_positive_int(
        "batch_size",
        batch_size
        if batch_size is not None
        else _env("STRIKES_BATCH_SIZE", int, DEFAULT_BATCH_SIZE),
    )
    mailbox = _check_positive_int(
        "mailbox_size",
        mailbox_size
        if mailbox_size is not None
        else _env("STRIKES_MAILBOX_SIZE", int, max(DEFAULT_MAILBOX_SIZE, batch)),
    )
    if mailbox < batch:
        raise ValueError(f"mailbox_size ({mailbox}) must be >= batch_size ({batch})")
    largest = _check_positive_int(
        "max_batch_size",
        max_batch_size
        if max_batch_size is not None
        else _env("STRIKES_MAX_BATCH_SIZE", int, batch * MAX_BATCH_FACTOR),
    )
    if largest < batch:
        raise ValueError(f"max_batch_size ({largest}) must be >= batch_size ({batch})")
    policy = _check_backpressure(
        backpressure if backpressure is not None else _env("STRIKES_BACKPRESSURE", str, "block")
    )
    if delivery is not None and not isinstance(delivery, DeliveryPolicy):
        raise TypeError(f"delivery must be a DeliveryPolicy, got {type(delivery).__qualname__}")
    masked = _check_flag(
        "mask_secrets",
        mask_secrets
        if mask_secrets is not None
        else _env("STRIKES_MASK_SECRETS", _parse_bool, True),  # noqa: FBT003
    )
    spooling = _check_flag(
        "spool",
        spool if spool is not None else _env("STRIKES_SPOOL", _parse_bool, True),  # noqa: FBT003
    )
    provenance_options = resolve_provenance(
        provenance, _env("STRIKES_PROVENANCE", _parse_provenance, _DEFAULT_PROVENANCE)
    )
    sampling = resolve_system_metrics(
        system_metrics, _env("STRIKES_SYSTEM_METRICS", _parse_system_metrics, None)
    )
    heartbeat = _check_interval(
        heartbeat_interval
        if heartbeat_interval is not None
        else _env("STRIKES_HEARTBEAT_INTERVAL", float, DEFAULT_HEARTBEAT_INTERVAL),
        "heartbeat_interval",
        zero=True,
    )
    chosen = _check_sinks(sinks, directory) if sinks is not None else (LocalStore(directory),)
    if console if console is not None else _env("STRIKES_CONSOLE", _parse_bool, False):  # noqa: FBT003
        chosen = (*chosen, ConsoleSink())
    settings = Settings(
        project=project,
        dir=directory,
        sinks=chosen,
        flush_interval=interval,
        batch_size=batch,
        mailbox_size=mailbox,
        backpressure=policy,
        delivery=delivery if delivery is not None else DeliveryPolicy(),
        mask_secrets=masked,
        spool=spooling,
        provenance=provenance_options,
        system_metrics=sampling,
        heartbeat_interval=heartbeat,
        max_batch_size=largest,
    )
    global _settings  # noqa: PLW0603 - process-wide defaults for new runs
    with _lock:
        _settings = settings
    return settings


_settings: Settings | None = None
_lock = threading.Lock()


def get_settings() -> Settings:
    """The settings new runs use: the last ``configure()``, else one from the environment."""
    settings = _settings
    if settings is None:
        settings = configure()
    return settings
