"""Bad input and hostile names: never outside the store, clear errors, never a crashed actor."""

from __future__ import annotations

import asyncio
import math
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest
import structlog.testing

import strikes as dn
from strikes import _values
from strikes._secrets import MASK, is_secret_name
from strikes.events import Blob, Param, RunStarted
from strikes.runtime.spool import sink_spool_dir
from strikes.runtime.state import RunState
from strikes.sinks.base import Batch

HOSTILE_NAMES = [
    "../x",
    "../../../../../../tmp/escaped",
    "/etc/passwd",
    "..",
    ".",
    "a/../../b",
    "..\\..\\windows",
    "~/home",
    "name\nwith\nnewlines",
    "x" * 1024,
    "ünïcødé/名前",
]


@pytest.fixture(autouse=True)
def _fresh_repr_warnings() -> None:
    """Each test sees the once-per-type repr warning anew."""
    _values._warned_types.clear()


def _files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


class TestHostileNames:
    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_names_never_reach_outside_the_store(
        self, name: str, tmp_path: Path, store_dir: Path
    ) -> None:
        """Run, project, tag, task, metric, param, value and artifact names stay data, not paths."""
        artifact = tmp_path / "data.txt"
        artifact.write_text("payload")
        before = _files_under(tmp_path)
        dn.configure(mask_secrets=False)  # "/etc/passwd" names a secret, rightly
        with dn.run(name, project=name, tags=[name]) as run:
            dn.log_metric(name, 1.0)
            dn.log_param(name, name)
            dn.log_input(name, name)
            dn.log_output(name, name)
            dn.log_artifact(artifact, name=name)
            with dn.task_span(name, label=name):
                dn.log_metric(name, 2.0)
        created = _files_under(tmp_path) - before
        assert created
        assert all(path == store_dir or store_dir in path.parents for path in created)
        assert all(not path.is_symlink() for path in created)
        record = dn.open_store(store_dir).run(run.run_id)
        assert record.name == name
        assert record.project == name
        assert name in record.tags
        assert record.metrics[name][0].value == 1.0
        assert record.params[name] == name
        assert record.artifacts[0].name == name
        assert record.all_tasks[0].name == name

    @pytest.mark.parametrize(
        ("value", "error", "match"),
        [
            ("", ValueError, "must not be empty"),
            ("  ", ValueError, "must not be empty"),
            ("a\x00b", ValueError, "NUL"),
            ("x" * 1025, ValueError, "at most 1024"),
            (b"bytes", TypeError, "must be a str"),
            (None, TypeError, "must be a str"),
        ],
    )
    def test_bad_names_get_a_clear_error(
        self, value: Any, error: type[Exception], match: str
    ) -> None:
        """Empty, NUL-bearing, too long and non-str names are refused, naming the argument."""
        with dn.run("r"):
            for call in (dn.log_param, dn.log_input, dn.tag):
                with pytest.raises(error, match=match):
                    call(value, 1) if call is not dn.tag else call(value)
            with pytest.raises(error, match=match), dn.task_span(value):
                pass
        if value is not None:  # run(None) means "pick a name"
            with pytest.raises(error, match=match):
                dn.run(value)
            with pytest.raises(error, match=match):
                dn.run("r", project=value)

    @pytest.mark.parametrize(
        ("value", "error"),
        [("", ValueError), ("x" * 1025, ValueError), (b"m", TypeError), (None, TypeError)],
    )
    def test_metric_names_are_checked_on_the_hot_path(
        self, value: Any, error: type[Exception]
    ) -> None:
        """log_metric refuses empty, too long and non-str names, naming ``name``."""
        with dn.run("r"), pytest.raises(error, match="name"):
            dn.log_metric(value, 1)

    def test_metric_names_with_odd_characters_are_kept_as_data(self, store_dir: Path) -> None:
        """Documented fallback: the hot path does not scan for NUL or blanks; such metric names
        are stored as they are (they are never used as paths)."""
        with dn.run("odd") as run:
            dn.log_metric("a\x00b", 1)
            dn.log_metric("  ", 2)
        metrics = dn.open_store(store_dir).run(run.run_id).metrics
        assert metrics["a\x00b"][0].value == 1.0
        assert metrics["  "][0].value == 2.0

    def test_project_with_nul_is_refused(self) -> None:
        """configure(project=...) refuses NUL and says which argument it was."""
        with pytest.raises(ValueError, match="project"):
            dn.configure(project="a\x00b")

    def test_run_ids_from_outside_are_validated(self, store_dir: Path) -> None:
        """A reader never turns an arbitrary run id into a path."""
        store = dn.open_store(store_dir)
        for bad in ("../x", "/etc", "0" * 31 + "/", "A" * 32):
            with pytest.raises(ValueError, match="run_id"):
                store.run(bad)

    def test_sink_names_are_made_safe_for_the_spool(self, tmp_path: Path) -> None:
        """A sink whose name looks like a path still spools inside the spool directory."""
        root = tmp_path / "spool"
        for name in ("../../evil", "/abs", "..", "", "a\x00b", "x" * 500):
            directory = sink_spool_dir(root, name)
            assert directory.parent == root
            assert directory.name not in ("", ".", "..")

    def test_store_files_are_private(self, store_dir: Path) -> None:
        """Every directory the store makes is 0700 and every file 0600."""
        with dn.run("private"):
            dn.log_metric("m", 1)
            dn.log_input("big", "x" * 100_000)
        for path in [store_dir, *_files_under(store_dir)]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), path


class TestSecrets:
    @pytest.mark.parametrize(
        "name",
        [
            "api_key",
            "OPENAI_API_KEY",
            "openaiApiKey",
            "token",
            "hf_token",
            "password",
            "db_password",
            "client_secret",
            "aws_secret_access_key",
            "Authorization",
            "credentials",
            "private_key",
        ],
    )
    def test_secret_looking_names_are_recognised(self, name: str) -> None:
        """Names of keys, tokens, passwords and secrets are recognised."""
        assert is_secret_name(name)

    @pytest.mark.parametrize(
        "name", ["lr", "max_tokens", "token_count", "num_keys", "key", "author", "passage"]
    )
    def test_ordinary_names_are_left_alone(self, name: str) -> None:
        """Common parameter names that merely contain such words are not masked."""
        assert not is_secret_name(name)

    def test_secret_params_are_masked_everywhere(self, store_dir: Path) -> None:
        """A secret param is '***' in the live run, the events and the store; others are kept."""
        sink = dn.MemorySink()
        dn.configure(sinks=[sink, dn.LocalStore()])
        with dn.run("secrets") as run:
            dn.log_param("api_key", "sk-live-123")
            dn.log_params(model="gpt", config={"password": "hunter2", "depth": 3})
        assert run.params["api_key"] == MASK
        assert run.params["config"] == {"password": MASK, "depth": 3}
        values = {p.name: p.value for p in sink.of_type(Param)}
        assert values == {"api_key": MASK, "model": "gpt", "config": {"password": MASK, "depth": 3}}
        stored = dn.open_store(store_dir).run(run.run_id).params
        assert stored["api_key"] == MASK
        assert all(
            b"sk-live-123" not in p.read_bytes() for p in store_dir.rglob("*") if p.is_file()
        )

    def test_masking_can_be_turned_off(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """configure(mask_secrets=False), or STRIKES_MASK_SECRETS=0, keeps values as given."""
        dn.configure(mask_secrets=False)
        with dn.run("plain") as run:
            dn.log_param("token", "abc")
        assert run.params["token"] == "abc"
        monkeypatch.setenv("STRIKES_MASK_SECRETS", "0")
        assert dn.configure().mask_secrets is False
        with pytest.raises(TypeError, match="mask_secrets must be a bool"):
            dn.configure(mask_secrets="no")  # type: ignore[arg-type]


class TestBadValues:
    def test_nan_and_infinities_are_kept(self, store_dir: Path) -> None:
        """NaN, inf and -inf metrics and params are stored as they are."""
        with dn.run("nan") as run:
            for i, value in enumerate((math.nan, math.inf, -math.inf)):
                dn.log_metric("m", value, step=i)
            dn.log_param("p", math.nan)
        record = dn.open_store(store_dir).run(run.run_id)
        values = [point.value for point in record.metrics["m"]]
        assert math.isnan(values[0])
        assert values[1:] == [math.inf, -math.inf]
        assert math.isnan(record.params["p"])

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda: dn.log_metric("m", "high"), "metric value must be a real number"),
            (lambda: dn.log_metric("m", None), "metric value must be a real number"),
            (lambda: dn.log_metric("m", 1, step=1.5), "step must be an int"),
            (lambda: dn.log_metric("m", 1, timestamp=3), "timestamp must be a datetime"),
            (lambda: dn.log_artifact(42), "path must be a str or Path"),
            (lambda: dn.tag("one-string-is-not-a-list-of-tags", 3), "tags must be a str"),
        ],
    )
    def test_wrong_types_name_the_argument(self, call: Any, match: str) -> None:
        """A wrong type is a TypeError at the call site that names the argument."""
        with dn.run("types"), pytest.raises(TypeError, match=match):
            call()

    def test_missing_artifact_is_a_clear_error(self, tmp_path: Path) -> None:
        """log_artifact of a path that does not exist raises FileNotFoundError naming it."""
        with dn.run("missing"), pytest.raises(FileNotFoundError, match="nowhere"):
            dn.log_artifact(tmp_path / "nowhere")

    def test_cyclic_deep_and_unserializable_values_fall_back_to_repr(self, store_dir: Path) -> None:
        """Values msgspec cannot encode are stored by repr with a warning; the run goes on."""
        cyclic: list[Any] = [1]
        cyclic.append(cyclic)
        deep: list[Any] = []
        for _ in range(100_000):
            deep = [deep]

        class Opaque:
            def __repr__(self) -> str:
                return "Opaque()"

        class Broken:
            def __repr__(self) -> str:
                raise RuntimeError("no repr for you")

        with warnings.catch_warnings(record=True) as caught, dn.run("odd") as run:
            warnings.simplefilter("always")
            dn.log_param("cyclic", cyclic)
            dn.log_param("deep", deep)
            dn.log_param("opaque", Opaque())
            dn.log_input("broken", Broken())
            dn.log_metric("after", 1)
        assert any(issubclass(w.category, RuntimeWarning) for w in caught)
        record = dn.open_store(store_dir).run(run.run_id)
        assert record.params["cyclic"] == "[1, [...]]"
        assert isinstance(record.params["deep"], str)
        assert record.params["opaque"] == "Opaque()"
        assert record.inputs["broken"].startswith("<unrepresentable ")
        assert "no repr for you" in record.inputs["broken"]
        assert record.metrics["after"][0].value == 1.0
        assert record.status == "finished"
    def test_ints_beyond_64_bits_are_kept_as_text(self, store_dir: Path) -> None:
        """msgpack holds 64-bit ints; bigger ones are stored as their decimal text, nothing lost."""
        huge = 2**100
        with dn.run("bigints", tags=["t"], seed=huge) as run:
            dn.log_param("seed", huge)
            dn.log_param("nested", {"ids": [1, -(2**70)], 2**65: "key"})
            dn.log_input("prime", 2**127 - 1)
            dn.log_output("rows", [{"id": 2**64 + i} for i in range(300)])  # a blob
            with dn.task_span("step", big=2**80):
                dn.log_output("factorial", math.factorial(30))
            dn.log_metric("after", 1)
        record = dn.open_store(store_dir).run(run.run_id)
        assert record.status == "finished"
        assert record.params["seed"] == str(huge)
        assert record.params["nested"] == {"ids": [1, str(-(2**70))], str(2**65): "key"}
        assert record.inputs["prime"] == str(2**127 - 1)
        assert record.outputs["rows"][299] == {"id": str(2**64 + 299)}
        assert record.tasks[0].outputs["factorial"] == str(math.factorial(30))
        assert record.metrics["after"][0].value == 1.0
        assert _values.to_builtins(2**64 - 1) == 2**64 - 1  # the largest msgpack int stays an int
        assert _values.to_builtins(-(2**63)) == -(2**63)


    def test_huge_param_is_refused_naming_it(self) -> None:
        """A param over 1 MiB is a ValueError naming the param; the run goes on."""
        with dn.run("huge") as run:
            with pytest.raises(ValueError, match="param 'blob'"):
                dn.log_param("blob", "x" * (2 * 1024 * 1024))
            dn.log_param("small", 1)
        assert run.params == {"small": 1}

    def test_huge_strings_and_bytes_are_stored_by_hash(self, store_dir: Path) -> None:
        """Large inputs and outputs go to content-addressed objects and read back whole."""
        text = "é" * 3_000_000
        data = os.urandom(8 * 1024 * 1024)
        with dn.run("big") as run:
            dn.log_input("text", text)
            dn.log_output("data", data)
        record = dn.open_store(store_dir).run(run.run_id)
        assert record.inputs["text"] == text
        assert record.outputs["data"] == data


class TestVanishingArtifacts:
    def test_artifact_deleted_before_the_flush_is_an_error_event(
        self, tmp_path: Path, store_dir: Path
    ) -> None:
        """A file removed before the runtime hashes it is recorded as an error, with a warning."""
        path = tmp_path / "gone.txt"
        path.write_text("soon gone")
        with structlog.testing.capture_logs() as logs, dn.run("vanish") as run:
            dn.log_artifact(path)
            path.unlink()
            dn.log_metric("after", 1)
        record = dn.open_store(store_dir).run(run.run_id)
        assert [e.type for e in record.errors] == ["ArtifactMissing"]
        assert "gone.txt" in record.errors[0].message
        assert record.metrics["after"][0].value == 1.0
        assert any(e["event"].startswith("strikes: artifact vanished") for e in logs)

    def test_artifact_vanishing_mid_copy_does_not_lose_the_batch(self, tmp_path: Path) -> None:
        """A file gone between hashing and copying: events kept, a warning, no object stored."""
        store = dn.LocalStore(tmp_path / "store")
        run_id = "ab" * 16
        event = RunStarted(run_id, "cd" * 8, "", 0, 1, "r", "p")
        state = RunState(run_id, owner=True)
        state.fold([event])
        batch = Batch(
            run_id=run_id,
            writer_id="w-1",
            events=[event],
            blobs=[Blob("ef" * 32, source=str(tmp_path / "vanished"))],
            state=state,
        )

        async def write() -> None:
            async with store:  # the local store writes through aiofiles: asyncio only
                await store.write(batch)

        with structlog.testing.capture_logs() as logs:
            asyncio.run(write())
        assert dn.open_store(store.path).run(run_id).name == "r"
        assert not [p for p in (store.path / "objects").rglob("*") if p.is_file()]
        assert any(e["event"].startswith("strikes: artifact file vanished") for e in logs)
