"""Identifiers: run ids that sort by time and double as trace ids, random span ids, run names."""

from __future__ import annotations

import random
import time

__all__ = ["new_run_id", "new_span_id", "random_run_name"]

_random = random.SystemRandom()

_ADJECTIVES = (
    "amber",
    "bold",
    "brave",
    "bright",
    "calm",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "daring",
    "eager",
    "fancy",
    "fierce",
    "gentle",
    "glad",
    "golden",
    "grand",
    "happy",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucky",
    "mellow",
    "mighty",
    "nimble",
    "noble",
    "patient",
    "proud",
    "quick",
    "quiet",
    "rapid",
    "silent",
    "sleek",
    "smart",
    "snowy",
    "steady",
    "sunny",
    "swift",
    "tidy",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zesty",
)
_NOUNS = (
    "badger",
    "bear",
    "beetle",
    "bison",
    "cedar",
    "comet",
    "crane",
    "dolphin",
    "eagle",
    "falcon",
    "fern",
    "finch",
    "fox",
    "gecko",
    "heron",
    "ibis",
    "koala",
    "lark",
    "lemur",
    "lion",
    "lynx",
    "maple",
    "meteor",
    "moose",
    "newt",
    "oak",
    "orca",
    "otter",
    "owl",
    "panda",
    "pine",
    "puma",
    "rabbit",
    "raven",
    "river",
    "robin",
    "salmon",
    "seal",
    "sparrow",
    "tiger",
    "trout",
    "walrus",
    "willow",
    "wolf",
    "wren",
    "yak",
)


def new_run_id() -> str:
    """32 hex digits: 48 bits of milliseconds since the epoch, then 80 random bits."""
    millis = time.time_ns() // 1_000_000
    return f"{millis & 0xFFFFFFFFFFFF:012x}{_random.getrandbits(80):020x}"


def new_span_id() -> str:
    """16 hex digits, never all zeros (an invalid OpenTelemetry span id)."""
    return f"{random.getrandbits(64) or 1:016x}"


def random_run_name() -> str:
    """A name like ``clever-rabbit-492``."""
    return f"{_random.choice(_ADJECTIVES)}-{_random.choice(_NOUNS)}-{_random.randint(0, 999):03d}"
