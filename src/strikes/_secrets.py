"""Masking of params whose names look like secrets (``api_key``, ``token``, ``password``...).

A name is split into lowercase words (``openaiApiKey`` and ``OPENAI_API_KEY`` both give
``openai api key``). It names a secret when a word is one of :data:`SECRET_WORDS`, when
its last word is one of :data:`SECRET_LAST_WORDS` (``hf_token`` but not ``token_count``
or ``max_tokens``), or when its last two words are a pair like ``api key``. Masking
applies to a param's own name and to the keys of dicts inside its value.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MASK", "SECRET_LAST_WORDS", "SECRET_WORDS", "is_secret_name", "mask_secrets"]

MASK = "***"
"""What a secret's value is replaced with."""

SECRET_WORDS = frozenset(
    {"password", "passwd", "passphrase", "secret", "secrets", "credential", "credentials"}
)
"""Words that make a name secret wherever they appear."""
SECRET_LAST_WORDS = frozenset(
    {"token", "apikey", "auth", "authorization", "cookie", "dsn", "privatekey"}
)
"""Words that make a name secret when they end it."""
_KEY_QUALIFIERS = frozenset(
    {"api", "private", "secret", "access", "signing", "encryption", "client", "master", "auth"}
)
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_MAX_DEPTH = 32


def _words(name: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether ``name`` looks like the name of a secret."""
    words = _words(name)
    if not words:
        return False
    if not SECRET_WORDS.isdisjoint(words) or words[-1] in SECRET_LAST_WORDS:
        return True
    return len(words) >= 2 and words[-1] == "key" and words[-2] in _KEY_QUALIFIERS


def mask_secrets(name: str, value: Any, _depth: int = 0) -> Any:
    """``value`` with secrets masked: all of it when ``name`` is secret, else secret dict keys.

    ``value`` is already made of builtins (dicts, lists, scalars); deeper than 32 levels
    it is returned as it is.
    """
    if is_secret_name(name):
        return MASK
    if _depth >= _MAX_DEPTH:
        return value
    if isinstance(value, dict):
        return {
            key: mask_secrets(key, item, _depth + 1)
            if isinstance(key, str)
            else mask_secrets("", item, _depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets("", item, _depth + 1) for item in value]
    return value
