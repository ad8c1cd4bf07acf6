"""configure() and the STRIKES_* environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

import strikes as dn
from strikes._config import get_settings


class TestDefaults:
    def test_defaults_without_configure(self, store_dir: Path) -> None:
        """With no configure() call, runs go to $STRIKES_DIR in project Default."""
        settings = get_settings()
        assert settings.project == "Default"
        assert settings.dir == store_dir
        assert [type(s) for s in settings.sinks] == [dn.LocalStore]
        assert (settings.batch_size, settings.mailbox_size, settings.backpressure) == (
            1000,
            10_000,
            "block",
        )
        assert settings.max_batch_size == 8000  # batches grow up to 8x when behind

    def test_default_dir_is_dot_strikes(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without $STRIKES_DIR the store is ./.strikes."""
        monkeypatch.delenv("STRIKES_DIR")
        assert get_settings().dir == Path(".strikes")

    def test_each_call_starts_from_the_defaults(self) -> None:
        """configure() arguments left out go back to their environment or default values."""
        dn.configure(project="a", batch_size=10)
        settings = dn.configure(batch_size=20)
        assert (settings.project, settings.batch_size) == ("Default", 20)


class TestEnvironment:
    def test_environment_variables(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        """Every setting can come from a STRIKES_* variable."""
        monkeypatch.setenv("STRIKES_PROJECT", "from-env")
        monkeypatch.setenv("STRIKES_DIR", str(tmp_path / "env-store"))
        monkeypatch.setenv("STRIKES_FLUSH_INTERVAL", "0.5")
        monkeypatch.setenv("STRIKES_BATCH_SIZE", "50")
        monkeypatch.setenv("STRIKES_MAILBOX_SIZE", "500")
        monkeypatch.setenv("STRIKES_BACKPRESSURE", "drop_oldest")
        monkeypatch.setenv("STRIKES_CONSOLE", "yes")
        settings = dn.configure()
        assert settings.project == "from-env"
        assert settings.dir == tmp_path / "env-store"
        assert (settings.flush_interval, settings.batch_size, settings.mailbox_size) == (
            0.5,
            50,
            500,
        )
        assert settings.backpressure == "drop_oldest"
        assert [type(s) for s in settings.sinks] == [dn.LocalStore, dn.ConsoleSink]

    def test_arguments_beat_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An argument overrides its environment variable."""
        monkeypatch.setenv("STRIKES_PROJECT", "from-env")
        assert dn.configure(project="explicit").project == "explicit"

    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("STRIKES_BATCH_SIZE", "many"),
            ("STRIKES_FLUSH_INTERVAL", "soon"),
            ("STRIKES_CONSOLE", "maybe"),
        ],
    )
    def test_bad_environment_value_names_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        """A malformed environment variable is reported by name."""
        monkeypatch.setenv(variable, value)
        with pytest.raises(ValueError, match=variable):
            dn.configure()


class TestValidation:
    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"project": ""}, ValueError, "project must not be empty"),
            ({"project": 3}, TypeError, "project must be a str"),
            ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
            ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
            ({"mailbox_size": 10, "batch_size": 100}, ValueError, "mailbox_size"),
            ({"max_batch_size": 10, "batch_size": 100}, ValueError, "max_batch_size"),
            ({"max_batch_size": "big"}, TypeError, "max_batch_size must be an int"),
            ({"flush_interval": 0}, ValueError, "flush_interval"),
            ({"flush_interval": float("nan")}, ValueError, "flush_interval"),
            ({"flush_interval": "1"}, TypeError, "flush_interval"),
            ({"backpressure": "wait"}, ValueError, "backpressure must be one of"),
            ({"sinks": dn.MemorySink()}, TypeError, "sinks must be a list"),
            ({"sinks": [object()]}, TypeError, "sinks must hold Sink instances"),
            ({"delivery": (1, 2, 3)}, TypeError, "delivery must be a DeliveryPolicy"),
        ],
    )
    def test_bad_arguments_are_named(
        self, kwargs: dict[str, object], error: type[Exception], match: str
    ) -> None:
        """Each bad argument raises TypeError/ValueError naming it."""
        with pytest.raises(error, match=match):
            dn.configure(**kwargs)  # type: ignore[arg-type]


class TestSinks:
    def test_sinks_replace_the_local_store(self, store: dn.Store) -> None:
        """configure(sinks=[...]) replaces the default: nothing is written to disk."""
        memory = dn.MemorySink()
        dn.configure(sinks=[memory])
        with dn.run("memory-only"):
            dn.log_metric("m", 1)
        assert memory.metrics() == {"m": [1.0]}
        assert store.runs() == []

    def test_local_store_added_back_uses_configured_dir(self, tmp_path: Path) -> None:
        """A LocalStore() without a path, listed in sinks, writes to configure(dir=...)."""
        memory = dn.MemorySink()
        dn.configure(sinks=[memory, dn.LocalStore()], dir=tmp_path / "chosen")
        with dn.run("both"):
            pass
        assert [r.name for r in dn.open_store(tmp_path / "chosen").runs()] == ["both"]
        assert memory.events

    def test_runs_keep_the_settings_they_started_with(self) -> None:
        """configure() during an open run affects only runs opened later."""
        first, second = dn.MemorySink(), dn.MemorySink()
        dn.configure(sinks=[first])
        with dn.run("old"):
            dn.configure(sinks=[second])
            dn.log_metric("m", 1)
        assert first.metrics() == {"m": [1.0]}
        assert second.events == []
