"""Helpers for testing code that logs to strikes: ``capture()`` and a pytest fixture.

```python
from strikes.testing import capture

def test_my_agent():
    with capture() as sink:
        run_my_agent()          # opens dn.run(...) and logs
    assert sink.metrics()["score"] == [1.0]
```

With pytest, the ``strikes_capture`` fixture does the same for a whole test; enable it
with ``pytest_plugins = ["strikes.testing"]`` in your ``conftest.py``. (It is not
registered automatically: pytest would then rewrite every module of strikes.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from strikes import _config
from strikes.sinks.memory import MemorySink

__all__ = ["capture", "strikes_capture"]

try:
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed for the fixture
    pytest = None  # type: ignore[assignment]


@contextmanager
def capture() -> Iterator[MemorySink]:
    """Send runs opened inside the block to a fresh MemorySink only; restore settings after.

    Not meant for runs shared between threads that outlive the block: settings are
    process-wide, and runs keep the settings they started with.
    """
    previous = _config._settings
    sink = MemorySink()
    # Every other setting (provenance, system metrics, masking, ...) stays as it was.
    settings = dataclasses.replace(_config.get_settings(), sinks=(sink,))
    with _config._lock:
        _config._settings = settings
    try:
        yield sink
    finally:
        with _config._lock:
            _config._settings = previous


if pytest is not None:

    @pytest.fixture
    def strikes_capture() -> Iterator[MemorySink]:
        """A MemorySink receiving every run the test opens (see :func:`capture`)."""
        with capture() as sink:
            yield sink
