"""get_run_context() and continue_run(): the portable run context, in one process."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import anyio
import msgspec
import pytest

import strikes as dn


class TestRunContext:
    def test_outside_a_run_is_an_error(self) -> None:
        """get_run_context() with no run open raises, saying what to do."""
        with pytest.raises(RuntimeError, match="needs an open run"):
            dn.get_run_context()

    def test_describes_the_current_span(self, store_dir: Path) -> None:
        """The context names the run, the current task as parent, and the store."""
        with dn.run("ctx", project="proj") as run:
            at_run = dn.get_run_context()
            with dn.task_span("step") as step:
                in_task = dn.get_run_context()
        assert at_run.run_id == run.run_id
        assert at_run.span_id == at_run.run_span_id == run.span_id
        assert at_run.project == "proj"
        assert at_run.run_name == "ctx"
        assert in_task.span_id == step.span_id
        assert in_task.parent_id == run.span_id
        assert in_task.traceparent == f"00-{run.run_id}-{step.span_id}-01"
        assert in_task.trace_id == run.run_id
        assert Path(in_task.store_dir or "") == store_dir.absolute()
        assert in_task.otlp_endpoint is None

    def test_round_trips_through_json_pickle_and_env(self) -> None:
        """The context survives JSON, pickle and the environment-variable form unchanged."""
        with dn.run():
            context = dn.get_run_context()
        assert dn.RunContext.from_json(context.to_json()) == context
        assert pickle.loads(pickle.dumps(context)) == context
        assert msgspec.json.decode(context.to_env()["STRIKES_RUN_CONTEXT"], type=dn.RunContext) == (
            context
        )

    def test_malformed_contexts_are_refused(self) -> None:
        """Garbage, wrong ids and a bad traceparent give ValueError; other types TypeError."""
        with dn.run():
            good = dn.get_run_context()
        with pytest.raises(ValueError, match="not a strikes run context"):
            dn.continue_run("{}")
        with pytest.raises(ValueError, match="not a strikes run context"):
            dn.continue_run(b"not json")
        with pytest.raises(ValueError, match="run_id"):
            msgspec.structs.replace(good, run_id="xyz")
        with pytest.raises(ValueError, match="traceparent"):
            msgspec.structs.replace(good, traceparent="01-abc")
        with pytest.raises(TypeError, match="RunContext"):
            dn.continue_run({"run_id": good.run_id})  # type: ignore[arg-type]

    def test_no_context_and_no_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """continue_run() with no argument needs STRIKES_RUN_CONTEXT and says so."""
        monkeypatch.delenv("STRIKES_RUN_CONTEXT", raising=False)
        with pytest.raises(ValueError, match="STRIKES_RUN_CONTEXT"):
            dn.continue_run()


class TestContinueInThisProcess:
    def test_a_thread_logs_under_the_parent_task(self, store: dn.Store) -> None:
        """A thread continuing a task's context adds metrics and child tasks to that task."""

        def worker(context: dn.RunContext, index: int) -> None:
            with dn.continue_run(context):
                dn.log_metric("seen", index)
                with dn.task_span(f"child-{index}"):
                    dn.log_output("index", index)

        with dn.run("threads") as run:
            with dn.task_span("fan-out"):
                context = dn.get_run_context()
                threads = [threading.Thread(target=worker, args=(context, i)) for i in range(3)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
        record = store.run(run.run_id)
        fan_out = record.task("fan-out")
        assert sorted(p.value for p in fan_out.metrics["seen"]) == [0, 1, 2]
        assert sorted(t.name for t in fan_out.tasks) == ["child-0", "child-1", "child-2"]
        assert {t.outputs["index"] for t in fan_out.tasks} == {0, 1, 2}
        assert record.status == "finished"

    def test_run_level_context_logs_on_the_run(self, store: dn.Store) -> None:
        """A context taken at run level puts params and metrics on the run itself."""
        with dn.run("run-level") as run:
            context = dn.get_run_context()

            def worker() -> None:
                with dn.continue_run(context) as continued:
                    assert dn.get_current_run() is continued
                    dn.log_param("from_thread", "yes")
                    dn.log_metric("thread_metric", 1.5)

            thread = threading.Thread(target=worker)
            thread.start()
            thread.join()
        record = store.run(run.run_id)
        assert record.metrics["thread_metric"][0].value == 1.5
        assert record.tasks == []
        events = [e for e in record.events if isinstance(e, dn.events.Param)]
        assert [(e.name, e.value, e.span_id) for e in events] == [
            ("from_thread", "yes", run.span_id)
        ]

    def test_the_continuation_writes_no_run_boundaries(self, store: dn.Store) -> None:
        """Only the owner writes RunStarted/RunFinished, however many continuations log."""
        with dn.run() as run:
            context = dn.get_run_context()
            thread = threading.Thread(target=lambda: _log_once(context))
            thread.start()
            thread.join()
        kinds = [type(e).__name__ for e in store.run(run.run_id).events]
        assert kinds.count("RunStarted") == 1
        assert kinds.count("RunFinished") == 1
        assert "Metric" in kinds

    def test_exiting_flushes(self, store: dn.Store) -> None:
        """When continue_run() exits, what it logged is in the store (the run still open)."""
        with dn.run() as run:
            context = dn.get_run_context()
            thread = threading.Thread(target=lambda: _log_once(context))
            thread.start()
            thread.join()
            # read while the run is open: the thread's writer flushed on exit (the owner's
            # push_update flushes only the owner's own writer: RunStarted and the manifest)
            dn.push_update()
            metrics = dn.open_store(store.path).run(run.run_id).metrics
            assert [p.value for p in metrics["once"]] == [1.0]

    def test_another_runs_context_inside_a_run(self) -> None:
        """Continuing run A while run B is current in the same context is refused."""
        with dn.run("a"):
            context = dn.get_run_context()
        with dn.run("b"), pytest.raises(RuntimeError, match="one run at a time"):
            dn.continue_run(context).__enter__()

    def test_one_writer_per_process_keeps_nothing_per_block(self) -> None:
        """Blocks share the process's writer; tasks of finished blocks are not kept by it."""
        found: list[dn.Run] = []

        def worker(context: dn.RunContext) -> None:
            for _ in range(3):
                with dn.continue_run(context) as continued:
                    with dn.task_span("t"):
                        pass
                found.append(continued)

        with dn.run() as run:
            context = dn.get_run_context()
            thread = threading.Thread(target=worker, args=(context,))
            thread.start()
            thread.join()
        assert found[0] is found[1] is found[2] is not run
        assert found[0].children == []
        assert found[0].run_id == run.run_id

    @pytest.mark.anyio
    async def test_async_with(self, store: dn.Store) -> None:
        """``async with continue_run()`` works from async code and flushes without blocking."""
        async with dn.run("async") as run:
            with dn.task_span("parent"):
                context = dn.get_run_context()

            async def worker(index: int) -> None:
                async with dn.continue_run(context):
                    dn.log_metric("async_seen", index)

            async with anyio.create_task_group() as group:
                for index in range(3):
                    group.start_soon(worker, index)
        parent = store.run(run.run_id).task("parent")
        assert sorted(p.value for p in parent.metrics["async_seen"]) == [0, 1, 2]


def _log_once(context: dn.RunContext) -> None:
    with dn.continue_run(context):
        dn.log_metric("once", 1.0)


class TestEnvironmentVariable:
    def test_a_subprocess_continues_from_the_environment(self, store: dn.Store) -> None:
        """A child started with STRIKES_RUN_CONTEXT logs into the run with continue_run()."""
        code = textwrap.dedent(
            """
            import strikes as dn
            with dn.continue_run():
                dn.log_metric("child_metric", 42)
                with dn.task_span("child-task"):
                    dn.log_param("pid_param", 1)
            """
        )
        with dn.run("parent") as run:
            with dn.task_span("launcher"):
                env = {**os.environ, **dn.get_run_context().to_env()}
                env.pop("STRIKES_DIR")  # the context alone says where the store is
                subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)
        record = store.run(run.run_id)
        launcher = record.task("launcher")
        assert [p.value for p in launcher.metrics["child_metric"]] == [42.0]
        assert [t.name for t in launcher.tasks] == ["child-task"]
        assert launcher.tasks[0].params == {"pid_param": 1}


class TestOpenTelemetryParent:
    def test_a_run_inside_an_otel_span_joins_its_trace(self) -> None:
        """A run opened in an OpenTelemetry span records it, and its context uses that trace."""
        sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
        tracer = sdk_trace.TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("outer") as outer:
            with dn.run("inside-otel") as run:
                context = dn.get_run_context()
        span_context = outer.get_span_context()
        trace_id = f"{span_context.trace_id:032x}"
        assert run.attributes["otel.traceparent"] == (
            f"00-{trace_id}-{span_context.span_id:016x}-01"
        )
        assert context.trace_id == trace_id
        assert context.run_id == run.run_id != trace_id

    def test_without_an_active_span_the_run_is_its_own_trace(self) -> None:
        """Outside any OpenTelemetry span, the trace id is the run id and nothing is added."""
        pytest.importorskip("opentelemetry.trace")
        with dn.run() as run:
            context = dn.get_run_context()
        assert "otel.traceparent" not in run.attributes
        assert context.trace_id == run.run_id
