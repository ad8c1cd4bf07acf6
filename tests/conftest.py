"""Shared fixtures: every test gets its own store directory and fresh settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import strikes as dn
from _git import git
from strikes import _config, _context

pytest_plugins = ["strikes.testing"]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Run every async test on both asyncio and trio."""
    return str(request.param)


@pytest.fixture(autouse=True)
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private store for each test: ``$STRIKES_DIR`` and the default settings point at it."""
    directory = tmp_path / "store"
    monkeypatch.setenv("STRIKES_DIR", str(directory))
    for name in (
        "STRIKES_PROJECT",
        "STRIKES_BACKPRESSURE",
        "STRIKES_CONSOLE",
        "STRIKES_BATCH_SIZE",
        "STRIKES_MAX_BATCH_SIZE",
        "STRIKES_MAILBOX_SIZE",
        "STRIKES_FLUSH_INTERVAL",
        "STRIKES_PROVENANCE",
        "STRIKES_SYSTEM_METRICS",
    ):
        monkeypatch.delenv(name, raising=False)
    _config._settings = None
    _context._warned.clear()
    yield directory
    _config._settings = None


@pytest.fixture
def memory() -> dn.MemorySink:
    """A MemorySink installed as the only sink, for tests that look at raw events."""
    sink = dn.MemorySink()
    dn.configure(sinks=[sink])
    return sink


@pytest.fixture
def store(store_dir: Path) -> dn.Store:
    """The test's local store, opened for reading."""
    return dn.open_store(store_dir)


@pytest.fixture
def no_user_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git ignores the user's config and never finds a repository above ``tmp_path``."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))


@pytest.fixture
def repo(tmp_path: Path, no_user_git: None) -> Path:
    """A git repository with one commit of ``train.py`` on branch ``main``."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    directory = tmp_path / "repo"
    directory.mkdir()
    git(directory, "init", "-q", "-b", "main")
    (directory / "train.py").write_text("print('v1')\n")
    git(directory, "add", "train.py")
    git(directory, "commit", "-q", "-m", "first")
    return directory
