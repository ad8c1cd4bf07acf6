"""Identifiers: run ids that sort by time and double as trace ids, random span ids, run names."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable

__all__ = ["SHORT_ID_LENGTH", "new_run_id", "new_span_id", "random_run_name", "short_ids"]

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


_getrandbits = random.getrandbits
_to_bytes = int.to_bytes


def new_span_id() -> str:
    """16 hex digits, never all zeros (an invalid OpenTelemetry span id)."""
    # bytes.hex() is about twice as fast as f"{n:016x}", and this runs on every task call.
    return _to_bytes(_getrandbits(64) or 1, 8, "big").hex()


def random_run_name() -> str:
    """A name like ``clever-rabbit-492``."""
    return f"{_random.choice(_ADJECTIVES)}-{_random.choice(_NOUNS)}-{_random.randint(0, 999):03d}"


SHORT_ID_LENGTH = 16
"""Shortest id prefix shown: 12 digits of time and 4 random, so runs started together differ."""


def short_ids(ids: Iterable[str], minimum: int = SHORT_ID_LENGTH) -> dict[str, str]:
    """The shortest prefix of each id, at least ``minimum`` long, that no other id shares.

    A run id starts with its start time, so runs started in the same millisecond share
    their first 12 digits: a fixed-width prefix would not tell them apart.
    """
    ordered = sorted(set(ids))
    shared = [0] * len(ordered)  # longest prefix each id shares with a neighbour
    for index in range(1, len(ordered)):
        before, after = ordered[index - 1], ordered[index]
        common = 0
        for left, right in zip(before, after, strict=False):
            if left != right:
                break
            common += 1
        shared[index - 1] = max(shared[index - 1], common)
        shared[index] = max(shared[index], common)
    return {
        run_id: run_id[: max(minimum, shared[index] + 1)] for index, run_id in enumerate(ordered)
    }
