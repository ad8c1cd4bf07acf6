"""Settings: ``configure()`` and the ``STRIKES_*`` environment variables it falls back on."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar, cast

from strikes.runtime.actor import DeliveryPolicy
from strikes.runtime.mailbox import BACKPRESSURE_POLICIES, Backpressure
from strikes.sinks.base import Sink
from strikes.sinks.console import ConsoleSink
from strikes.sinks.local import LocalStore

__all__ = ["Settings", "configure", "get_settings"]

T = TypeVar("T")

DEFAULT_PROJECT = "Default"
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_BATCH_SIZE = 1000
DEFAULT_MAILBOX_SIZE = 10_000
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


def _check_interval(value: object) -> float:
    if type(value) not in (int, float):
        raise TypeError(
            f"flush_interval must be a number of seconds, got {type(value).__qualname__}"
        )
    seconds = float(cast("float", value))
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(
            f"flush_interval must be a positive, finite number of seconds, got {value}"
        )
    return seconds


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
) -> Settings:
    """Set how new runs record; every argument left out takes its environment or default value.

    ``sinks`` replaces the default local store (add ``LocalStore()`` to keep it);
    ``console=True`` adds a :class:`ConsoleSink`. Raises ``TypeError``/``ValueError``
    naming the bad argument (or environment variable). Returns the new settings.
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
        "spool", spool if spool is not None else _env("STRIKES_SPOOL", _parse_bool, True)  # noqa: FBT003
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
