"""The ``strikes`` command line: output for people and scripts, exit codes, every subcommand."""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import anyio
import pytest

import strikes as dn
from strikes import cli


def _boom() -> None:
    raise ValueError("bad answer")


@pytest.fixture
def runs(store: dn.Store) -> dn.Store:
    """A finished and a failed run with params, metrics and tasks."""
    with dn.run("alpha", project="demo", tags=["gpu"]):
        dn.log_params(lr=0.1)
        dn.log_metric("loss", 1.0, step=0)
        dn.log_metric("loss", 0.25, step=1)
        with dn.task_span("evaluate"):
            dn.log_metric("score", 0.9)
            with dn.task_span("sample"):
                dn.log_output("answer", 4)
    try:
        with dn.run("beta", project="demo"):
            dn.log_params(lr=0.5)
            dn.log_metric("loss", 2.0, step=0)
            with dn.task_span("judge"):
                _boom()
    except ValueError:
        pass
    return store


def run_cli(*argv: str) -> tuple[int, str]:
    """Run the CLI in-process; return the exit code and stdout."""
    out = io.StringIO()
    code = cli.main(list(argv), stdout=out)
    return code, out.getvalue()


class TestRuns:
    def test_table_lists_runs(self, runs: dn.Store) -> None:
        """`strikes runs` prints a table with each run's name and status."""
        code, text = run_cli("runs")
        assert code == 0
        assert "alpha" in text
        assert "beta" in text
        assert "failed" in text

    def test_ids_shown_are_unique_and_resolve(self, store: dn.Store) -> None:
        """Runs started in the same millisecond share 12 digits; the ids shown still differ."""

        async def sweep() -> None:
            async def one(index: int) -> None:
                async with dn.run(f"same-{index}"):
                    pass

            async with anyio.create_task_group() as group:
                for index in range(50):
                    group.start_soon(one, index)

        anyio.run(sweep)
        code, text = run_cli("runs", "--limit", "0")
        assert code == 0
        shown = [
            match.group(0)
            for line in text.splitlines()
            if "same-" in line and (match := re.search(r"\b[0-9a-f]{16,32}\b", line))
        ]
        assert len(shown) == 50
        assert len(set(shown)) == 50
        for prefix in shown:
            assert len(prefix) >= 16
            assert store.resolve(prefix).id.startswith(prefix)

    def test_json_and_filters(self, runs: dn.Store) -> None:
        """--json prints a list of runs; filters narrow it."""
        code, text = run_cli("runs", "--json", "--status", "failed")
        assert code == 0
        (only,) = json.loads(text)
        assert only["name"] == "beta"
        assert only["metrics"]["loss"]["last"] == 2.0
        _, text = run_cli("--json", "runs", "--param", "lr=0.1", "--tag", "gpu", "--since", "1h")
        assert [r["name"] for r in json.loads(text)] == ["alpha"]
        _, text = run_cli("runs", "--json", "--name", "zeta*")
        assert json.loads(text) == []

    def test_dir_option_and_empty_store(self, tmp_path: Path) -> None:
        """--dir points at another store; an empty store says so and exits 0."""
        code, text = run_cli("runs", "--dir", str(tmp_path / "empty"))
        assert code == 0
        assert "no runs" in text

    def test_table_shows_the_newest_by_default(
        self, runs: dn.Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A table stops at TABLE_LIMIT runs and says how many are hidden; --limit 0 shows all."""
        monkeypatch.setattr(cli, "TABLE_LIMIT", 1)
        monkeypatch.setattr(cli, "_rich", None)
        _, text = run_cli("runs")
        assert "beta" in text
        assert "alpha" not in text
        assert "1 older run(s)" in text
        _, text = run_cli("runs", "--limit", "0")
        assert "alpha" in text
        _, text = run_cli("runs", "--json")
        assert len(json.loads(text)) == 2

    def test_plain_text_without_rich(self, runs: dn.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without rich, tables are plain aligned text with a header rule."""
        monkeypatch.setattr(cli, "_rich", None)
        _, text = run_cli("runs")
        header, rule, *rows = text.splitlines()
        assert header.split()[:3] == ["id", "name", "project"]
        assert set(rule.replace(" ", "")) == {"-"}
        assert len(rows) == 2


class TestShowAndCompare:
    def test_show_by_name(self, runs: dn.Store, monkeypatch: pytest.MonkeyPatch) -> None:
        """`strikes show NAME` prints params, metric summaries and the task tree."""
        monkeypatch.setattr(cli, "_rich", None)
        code, text = run_cli("show", "alpha")
        assert code == 0
        assert "lr" in text
        assert "0.25" in text
        assert "└── evaluate [ok]" in text
        assert "    └── sample [ok]" in text

    def test_show_failed_run_shows_the_error(self, runs: dn.Store) -> None:
        """A failed run shows its error and the failed task."""
        _, text = run_cli("show", "beta")
        assert "ValueError: bad answer" in text
        assert "judge [FAILED]" in text

    def test_show_json_by_id_prefix(self, runs: dn.Store) -> None:
        """A unique id prefix finds the run; --json has the nested task tree."""
        run_id = runs.resolve("alpha").id
        other = runs.resolve("beta").id
        n = next(n for n in range(4, 33) if run_id[:n] != other[:n])
        code, text = run_cli("show", run_id[:n], "--json")
        assert code == 0
        data = json.loads(text)
        assert data["id"] == run_id
        assert data["tasks"][0]["name"] == "evaluate"
        assert data["tasks"][0]["tasks"][0]["outputs"] == {"answer": 4}
        assert data["metrics"]["evaluate.score"]["last"] == 0.9
        assert data["tasks"][0]["metrics"] == {"score": 0.9}

    def test_unknown_run_is_exit_1(
        self, runs: dn.Store, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown run prints `strikes: error:` on stderr and exits 1."""
        code, _ = run_cli("show", "nosuchrun")
        assert code == 1
        assert "strikes: error: no run" in capsys.readouterr().err

    def test_compare_side_by_side(self, runs: dn.Store) -> None:
        """`strikes compare` lines up params and last/min/max per run; --json for scripts."""
        code, text = run_cli("compare", "alpha", "beta")
        assert code == 0
        assert "param lr" in text
        assert "loss (last)" in text
        _, text = run_cli("compare", "alpha", "beta", "--json")
        data = json.loads(text)
        assert [r["params"]["lr"] for r in data] == [0.1, 0.5]
        assert data[0]["metrics"]["loss"]["min"] == 0.25


class TestExport:
    def test_export_to_file(self, runs: dn.Store, tmp_path: Path) -> None:
        """`strikes export metrics RUN -o file.csv` writes the rows and says how many."""
        target = tmp_path / "m.csv"
        code, text = run_cli("export", "metrics", "alpha", "-o", str(target), "--metric", "loss")
        assert code == 0
        assert "wrote 2 metrics rows" in text
        assert target.read_text().splitlines()[0] == "run_id,run_name,metric,step,value,timestamp"

    def test_export_csv_to_stdout(self, runs: dn.Store, capsys: pytest.CaptureFixture[str]) -> None:
        """`-o -` writes CSV to stdout."""
        code = cli.main(["export", "runs", "-o", "-", "--project", "demo"])
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("run_id,name,project,status")
        assert len(lines) == 3
        code = cli.main(["export", "metrics", "alpha", "-o", "-", "--metric", "loss"])
        header, first, _ = capsys.readouterr().out.splitlines()
        assert header == "run_id,run_name,metric,step,value,timestamp"
        assert first.split(",")[3:5] == ["0", "1.0"]
        assert first.endswith("+00:00")  # an ISO time, not raw nanoseconds

    def test_runs_and_filters_is_a_usage_error(self, runs: dn.Store) -> None:
        """Run references together with filters exit 2."""
        with pytest.raises(SystemExit) as exc:
            run_cli("export", "runs", "alpha", "--project", "demo", "-o", "-")
        assert exc.value.code == 2


class TestTail:
    def test_backlog(self, runs: dn.Store) -> None:
        """Without --follow, tail prints the last N events and exits."""
        code, text = run_cli("tail", "alpha", "-n", "3")
        assert code == 0
        lines = text.splitlines()
        assert len(lines) == 3
        assert "run_finished" in lines[-1]

    def test_follow_until_the_run_ends(self, store: dn.Store) -> None:
        """--follow prints events as they are written and exits 0 when the run finishes."""
        live = dn.run("live")
        live.__enter__()
        dn.log_metric("loss", 1.0, step=0)
        dn.push_update()
        out = io.StringIO()
        output = cli.Output(out, json_mode=True, use_rich=False)
        polls = 0

        def sleep(_: float) -> None:
            nonlocal polls
            polls += 1
            if polls == 1:
                dn.log_metric("loss", 0.5, step=1)
                dn.push_update()
            elif polls == 2:
                live.__exit__(None, None, None)

        args = argparse.Namespace(run="live", follow=True, lines=0, interval=0.0, timeout=60.0)
        assert cli.cmd_tail(store, args, output, sleep=sleep) == 0
        kinds = [json.loads(line)["kind"] for line in out.getvalue().splitlines()]
        values = [
            json.loads(line)["value"] for line in out.getvalue().splitlines() if "value" in line
        ]
        assert values == [0.5]
        assert kinds[-1] == "run_finished"

    def test_follow_a_failed_run_exits_1(self, runs: dn.Store) -> None:
        """Following a run that already failed prints its end and exits 1."""
        code, text = run_cli("tail", "beta", "--follow", "-n", "1")
        assert code == 1
        assert "run failed" in text


class TestCleanup:
    def test_rm_needs_confirmation_when_not_interactive(
        self, runs: dn.Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without --yes and without a terminal, rm refuses (exit 1) and deletes nothing."""
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code, _ = run_cli("rm", "alpha")
        assert code == 1
        assert "--yes" in capsys.readouterr().err
        assert len(runs.runs()) == 2

    def test_rm_with_yes(self, runs: dn.Store) -> None:
        """rm --yes deletes the run."""
        code, text = run_cli("rm", "alpha", "--yes", "--json")
        assert code == 0
        assert len(json.loads(text)["removed"]) == 1
        assert [r.name for r in runs.runs()] == ["beta"]

    def test_gc_reports(self, runs: dn.Store) -> None:
        """gc --dry-run --json reports counts without deleting."""
        code, text = run_cli("gc", "--dry-run", "--grace", "0", "--json")
        assert code == 0
        assert json.loads(text) == {"dry_run": True, "files": 0, "bytes": 0}


class TestParsing:
    def test_relative_and_absolute_times(self) -> None:
        """`2h`, `1d 6h` are durations; ISO times without a zone are UTC."""
        assert cli.parse_time("2h") == timedelta(hours=2)
        assert cli.parse_time("1d 6h") == timedelta(days=1, hours=6)
        moment = cli.parse_time("2025-01-31T12:00")
        assert str(moment) == "2025-01-31 12:00:00+00:00"

    def test_bad_time_and_param_are_usage_errors(self) -> None:
        """A bad --since or --param exits 2 with a message."""
        with pytest.raises(SystemExit) as exc:
            run_cli("runs", "--since", "soon")
        assert exc.value.code == 2
        with pytest.raises(SystemExit) as exc:
            run_cli("runs", "--param", "novalue")
        assert exc.value.code == 2

    def test_param_values_parse_as_json(self) -> None:
        """Param values are JSON when they parse, else text."""
        assert cli.parse_param("lr=0.1") == ("lr", 0.1)
        assert cli.parse_param("flag=true") == ("flag", True)
        assert cli.parse_param("model=gpt-4") == ("model", "gpt-4")

    def test_ui_refuses_a_public_address_without_token(self) -> None:
        """`strikes ui --host 0.0.0.0` without a token is a usage error."""
        pytest.importorskip("starlette")
        pytest.importorskip("uvicorn")
        with pytest.raises(SystemExit) as exc:
            run_cli("ui", "--host", "0.0.0.0", "--token", "")
        assert exc.value.code == 2

    def test_console_script(self, runs: dn.Store) -> None:
        """The installed `strikes` entry point runs and returns the exit code."""
        script = Path(sys.executable).with_name("strikes")
        if not script.exists():
            pytest.skip("the console script is not installed")
        done = subprocess.run(
            [script, "show", "nosuch"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 1
        assert "strikes: error:" in done.stderr
        done = subprocess.run(
            [script, "runs", "--json"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0
        assert len(json.loads(done.stdout)) == 2
