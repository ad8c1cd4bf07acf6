"""The public surface: every package's __all__ matches what it exports."""

from __future__ import annotations

import importlib

import pytest

MODULES = ["strikes", "strikes.sinks", "strikes.store", "strikes.runtime"]


@pytest.mark.parametrize("module_name", MODULES)
def test_all_matches_exports(module_name: str) -> None:
    """Each name in __all__ exists, and each public name is listed in __all__."""
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    for name in exported:
        assert hasattr(module, name), name
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(importlib))
    }
    assert public <= exported | {"annotations"}


def test_all_is_sorted() -> None:
    """The top-level __all__ is sorted, so additions are easy to review."""
    import strikes

    assert strikes.__all__ == sorted(strikes.__all__)
