"""Tasks: the decorator, recorded spans, helpers for many calls, span lists and the tree."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import math
import re
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

import strikes as dn
from strikes.events import Input, Output, TaskFinished, TaskStarted

DOCS = Path(__file__).parent.parent / "docs" / "tasks.md"


@dn.task
def double(x: int) -> int:
    return 2 * x


@dn.task
async def adouble(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x


@dn.task
def fail(message: str) -> int:
    raise ValueError(message)


@dn.task
async def afail(message: str) -> int:
    await anyio.lowlevel.checkpoint()
    raise ValueError(message)


class TestDecorator:
    def test_bare_empty_and_configured_forms_make_tasks(self) -> None:
        """@task, @task() and @task(name=...) all wrap the function in a task."""

        def f(x: int) -> int:
            return x

        assert isinstance(dn.task(f), dn.SyncTask)
        assert isinstance(dn.task()(f), dn.SyncTask)
        named = dn.task(name="Named Thing")(f)
        assert (named.name, named.label) == ("Named Thing", "named_thing")

    def test_sync_stays_sync_and_async_stays_async(self) -> None:
        """A sync task returns its value when called; an async task is a coroutine function."""
        with dn.run("kinds"):
            assert double(2) == 4
        assert isinstance(adouble, dn.AsyncTask)
        assert isinstance(adouble, dn.Task)
        coroutine = adouble(1)
        assert inspect.iscoroutine(coroutine)
        coroutine.close()

    def test_function_metadata_is_kept(self) -> None:
        """The task keeps the function's name, docstring and signature."""

        def documented(a: int, b: str = "x") -> str:
            """Docstring."""
            return b * a

        wrapped = dn.task(documented)
        assert wrapped.__name__ == "documented"
        assert wrapped.__doc__ == "Docstring."
        assert str(inspect.signature(wrapped)) == str(inspect.signature(documented))

    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_generators_are_refused_with_the_reason(self, kind: str) -> None:
        """Generator and async generator functions raise a TypeError that says why."""
        if kind == "sync":

            def gen() -> Iterator[int]:
                yield 1

            func: Any = gen
        else:

            async def agen() -> AsyncIterator[int]:
                yield 1

            func = agen
        with pytest.raises(TypeError, match=r"generator function.*one return value"):
            dn.task(func)

    def test_positional_options_are_refused(self) -> None:
        """task("name") is a mistake: the error says to pass options by keyword."""
        with pytest.raises(TypeError, match=r"by keyword: task\(name=\.\.\.\)"):
            dn.task("name")  # type: ignore[call-overload]

    @pytest.mark.parametrize(
        ("options", "error", "match"),
        [
            ({"log_inputs": "x"}, TypeError, "log_inputs must be"),
            ({"log_inputs": ["nope"]}, ValueError, r"log_inputs names \['nope'\]"),
            ({"tags": "one"}, TypeError, "tags must be a list"),
            ({"name": ""}, ValueError, "name must not be empty"),
            ({"label": 3}, TypeError, "label must be a str"),
            ({"scorers": len}, TypeError, "scorers must be a list"),
            ({"scorers": [len, dn.Scorer(abs, name="len")]}, ValueError, "distinct names"),
            ({"scorers": [len], "assert_scores": ["other"]}, ValueError, "assert_scores names"),
        ],
    )
    def test_bad_options_name_the_argument(
        self, options: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        """Bad options raise at decoration, naming the argument."""

        def f(x: int) -> int:
            return x

        with pytest.raises(error, match=match):
            dn.task(**options)(f)

    def test_labels_derive_from_the_name(self) -> None:
        """The label is the name lowercased with whitespace runs turned to underscores."""

        def f() -> None:
            pass

        assert dn.task(name="  Tokenize   Text ")(f).label == "tokenize_text"
        assert dn.task(name="Tokenize", label="tok")(f).label == "tok"
        assert dn.task(f).label == "f"

    def test_with_copies_the_task_with_changes(self) -> None:
        """with_() returns a new task; renaming derives a new label, attributes merge."""
        base = dn.task(name="Base", tags=["a"], model="m1")(lambda x: x)
        changed = base.with_(name="Other Name", tags=["b"], temperature=0.5)
        assert (changed.name, changed.label, changed.tags) == ("Other Name", "other_name", ("b",))
        assert changed.attributes == {"model": "m1", "temperature": 0.5}
        assert (base.name, base.tags) == ("Base", ("a",))


class TestRecording:
    def test_sync_call_records_inputs_output_and_timing(self, memory: dn.MemorySink) -> None:
        """A call records its bound arguments (defaults included), its output and its span."""

        @dn.task
        def greet(name: str, greeting: str = "hello") -> str:
            return f"{greeting} {name}"

        with dn.run("record") as run:
            assert greet("ada", greeting="hi") == "hi ada"
            assert greet("bob") == "hello bob"
        first, second = run.tasks
        assert first.inputs == {"name": "ada", "greeting": "hi"}
        assert second.inputs == {"name": "bob", "greeting": "hello"}
        assert first.outputs == {"output": "hi ada"}
        assert first.duration is not None
        assert first.duration >= 0
        events = [e for e in memory.events if e.run_id == run.run_id]
        kinds = [type(e) for e in events if e.span_id == first.span_id]
        assert kinds == [TaskStarted, Input, Input, Output, TaskFinished]

    @pytest.mark.anyio
    async def test_async_call_records_like_a_sync_one(self, store: dn.Store) -> None:
        """An async call is recorded the same way, and the store holds the same task."""
        async with dn.run("record-async") as run:
            assert await adouble(21) == 42
        (record,) = store.run(run.run_id).all_tasks
        assert (record.name, record.inputs, record.output) == ("adouble", {"x": 21}, 42)
        assert record.status == "finished"
        assert (record.depth, record.run_id, record.parent_id) == (0, run.run_id, run.span_id)

    def test_log_inputs_list_and_log_output_false(self) -> None:
        """log_inputs=[names] logs only those arguments; log_output=False logs no output."""

        @dn.task(log_inputs=["b"], log_output=False)
        def f(a: int, b: int, c: int = 3) -> int:
            return a + b + c

        @dn.task(log_inputs=False)
        def g(a: int) -> int:
            return a

        with dn.run("filters") as run:
            assert f(1, b=2) == 6
            g(5)
        assert run.tasks[0].inputs == {"b": 2}
        assert run.tasks[0].outputs == {}
        assert run.tasks[0].output == 6
        assert run.tasks[1].inputs == {}

    def test_variadic_arguments_are_logged_by_name(self) -> None:
        """*args and **kwargs are logged under their parameter names."""

        @dn.task
        def f(first: int, *rest: int, **options: str) -> int:
            return first + sum(rest)

        with dn.run("variadic") as run:
            f(1, 2, 3, mode="fast")
        assert run.tasks[0].inputs == {"first": 1, "rest": (2, 3), "options": {"mode": "fast"}}

    def test_tags_and_attributes_reach_the_store(self, store: dn.Store) -> None:
        """Tags and extra keyword attributes of the decorator are stored with every span."""

        @dn.task(tags=["llm", "llm"], model="small")
        def f() -> int:
            return 1

        with dn.run("attrs") as run:
            f()
        (record,) = store.run(run.run_id).all_tasks
        assert record.tags == ["llm"]
        assert record.attributes == {"model": "small"}

    def test_large_values_are_stored_by_reference(self, store: dn.Store) -> None:
        """A large input or output is stored once as an object and read back whole."""

        @dn.task
        def echo(text: str) -> str:
            return text

        big = "x" * 100_000
        with dn.run("big") as run:
            echo(big)
        (record,) = store.run(run.run_id).all_tasks
        assert record.inputs == {"text": big}
        assert record.output == big

    def test_failure_is_recorded_and_reraised(self, store: dn.Store) -> None:
        """Calling a task that raises records a failed span and raises the same exception."""
        with dn.run("boom") as run, pytest.raises(ValueError, match="bad") as caught:
            fail("bad")
        (span,) = run.tasks
        assert span.failed
        assert span.exception is caught.value
        (record,) = store.run(run.run_id).all_tasks
        assert record.status == "failed"
        assert record.error == "ValueError: bad"

    @pytest.mark.anyio
    async def test_async_failure_is_recorded_and_reraised(self) -> None:
        """Awaiting a task that raises records the failure and raises the same exception."""
        async with dn.run("aboom") as run:
            with pytest.raises(ValueError, match="worse"):
                await afail("worse")
        assert run.tasks[0].failed

    def test_metrics_in_a_task_stay_on_the_task_and_mirror_on_the_run(
        self, store: dn.Store
    ) -> None:
        """A metric logged in a task is the task's, and the run's as <label>.<name>."""

        @dn.task(name="Tokenize Text")
        def tokenize(text: str) -> list[str]:
            dn.log_metric("token_count", len(text.split()))
            return text.split()

        with dn.run("mirror") as run:
            tokenize("a b c")
            dn.log_metric("loss", 0.5)
        assert run.tasks[0].metrics["token_count"][0].value == 3.0
        record = store.run(run.run_id)
        assert record.all_tasks[0].metrics["token_count"][0].value == 3.0
        assert record.metrics["tokenize_text.token_count"][0].value == 3.0
        assert "token_count" not in record.metrics
        assert record.metrics["loss"][0].value == 0.5

    def test_methods_do_not_log_self(self) -> None:
        """A decorated method is bound to its instance; self is not an input."""

        class Agent:
            def __init__(self, prefix: str) -> None:
                self.prefix = prefix

            @dn.task
            def act(self, goal: str) -> str:
                return self.prefix + goal

            @dn.task
            async def aact(self, goal: str) -> str:
                return self.prefix + goal

            @staticmethod
            @dn.task
            def helper(x: int) -> int:
                return x + 1

        agent = Agent("do: ")
        with dn.run("methods") as run:
            assert agent.act("plan") == "do: plan"
            assert asyncio.run(agent.aact("go")) == "do: go"
            assert agent.act.run(goal="kw").output == "do: kw"
            assert Agent.helper(1) == 2
        assert [span.inputs for span in run.tasks] == [
            {"goal": "plan"},
            {"goal": "go"},
            {"goal": "kw"},
            {"x": 1},
        ]

    def test_task_span_with_logging_inside(self) -> None:
        """task_span works as a with block; log_* calls inside act on it."""
        with dn.run("adhoc") as run, dn.task_span("Load Data", tags=["io"]) as span:
            dn.log_input("path", "a.csv")
            dn.log_output("rows", 3)
        assert run.tasks == [span]
        assert span.label == "load_data"
        assert (span.inputs, span.outputs) == ({"path": "a.csv"}, {"rows": 3})

    def test_task_span_closes_once(self) -> None:
        """Closing a task span a second time raises instead of recording it twice."""
        with dn.run("twice"):
            span = dn.task_span("once")
            span.open()
            span.close()
            with pytest.raises(RuntimeError, match="already closed"):
                span.close()
        assert span.recorded
        assert span.duration is not None

    @pytest.mark.anyio
    async def test_task_span_async_with(self) -> None:
        """task_span works as an async with block, and tasks called inside are its children."""
        async with dn.run("adhoc-async") as run:
            async with dn.task_span("outer") as span:
                await adouble(1)
        assert [child.name for child in span.tasks] == ["adouble"]
        assert run.tasks == [span]


class TestOutsideRun:
    def test_sync_call_is_plain_with_one_warning(self) -> None:
        """With no run, a task call is a plain call; NoRunWarning comes once."""
        with pytest.warns(dn.NoRunWarning, match="task"):
            assert double(3) == 6
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert double(4) == 8

    @pytest.mark.anyio
    async def test_async_call_is_plain(self) -> None:
        """With no run, an async task call awaits the function and returns its value."""
        with pytest.warns(dn.NoRunWarning):
            assert await adouble(5) == 10

    def test_run_gives_an_unrecorded_span(self) -> None:
        """task.run() outside a run still returns a span with output, inputs and scores."""
        scored = dn.task(scorers=[lambda out: out > 1])(lambda x: x)
        with pytest.warns(dn.NoRunWarning):
            span = scored.run(3)
        assert (span.output, span.inputs, span.recorded) == (3, {"x": 3}, False)
        assert span.last_metric("<lambda>") == 1.0
        assert span.duration is not None


class TestRunAndRetry:
    def test_run_returns_the_span_and_never_raises(self) -> None:
        """task.run() returns a TaskSpan holding output or exception; nothing is raised."""
        with dn.run("spans") as run:
            ok = double.run(4)
            bad = fail.run("nope")
        assert (ok.output, ok.failed, ok.exception) == (8, False, None)
        assert bad.failed
        assert isinstance(bad.exception, ValueError)
        assert (ok.name, ok.label) == ("double", "double")
        assert (ok.inputs, ok.outputs) == ({"x": 4}, {"output": 8})
        assert ok.run is run
        assert ok.tasks == []
        assert ok.metrics == {}
        assert ok.started_at is not None
        assert ok.ended_at is not None

    @pytest.mark.anyio
    async def test_async_run_returns_the_span(self) -> None:
        """Awaiting task.run() returns the span; try_run is the same call."""
        async with dn.run("aspans"):
            ok = await adouble.run(4)
            bad = await afail.try_run("nope")
        assert ok.output == 8
        assert not ok.failed
        assert bad.failed
        assert str(bad.exception) == "nope"

    def test_keyboard_interrupt_propagates_from_run(self, store: dn.Store) -> None:
        """KeyboardInterrupt is not kept on the span: it is recorded and propagates."""

        @dn.task
        def interrupted() -> None:
            raise KeyboardInterrupt

        with dn.run("ctrl-c") as run, pytest.raises(KeyboardInterrupt):
            interrupted.run()
        assert run.tasks[0].failed
        assert store.run(run.run_id).all_tasks[0].status == "failed"

    @pytest.mark.anyio
    async def test_cancellation_propagates_from_run(self) -> None:
        """A cancelled async task is recorded as failed and the cancellation propagates."""
        started = anyio.Event()

        @dn.task
        async def forever() -> None:
            started.set()
            await anyio.sleep_forever()

        async with dn.run("cancel") as run:
            async with anyio.create_task_group() as group:
                group.start_soon(forever.run)
                await started.wait()
                group.cancel_scope.cancel()
        (span,) = run.tasks
        assert span.failed
        assert isinstance(span.exception, anyio.get_cancelled_exc_class())

    def test_try_returns_none_on_failure(self) -> None:
        """try_ returns the value, or None when the task failed (which is recorded)."""
        with dn.run("try") as run:
            assert double.try_(1) == 2
            assert fail.try_("x") is None
        assert [span.failed for span in run.tasks] == [False, True]

    @pytest.mark.anyio
    async def test_async_try(self) -> None:
        """Async try_ returns the value, or None on failure."""
        async with dn.run("atry"):
            assert await adouble.try_(1) == 2
            assert await afail.try_("x") is None

    def test_retry_until_success(self) -> None:
        """retry(n) calls again after failures and returns the first success."""
        calls: list[int] = []

        @dn.task
        def flaky(x: int) -> int:
            calls.append(x)
            if len(calls) < 3:
                raise ConnectionError("again")
            return x

        with dn.run("retry") as run:
            assert flaky.retry(5, 7) == 7
        assert [span.failed for span in run.tasks] == [True, True, False]

    @pytest.mark.anyio
    async def test_async_retry_exhausted_raises_the_last_error(self) -> None:
        """When every attempt fails, retry raises the last attempt's exception."""
        async with dn.run("aretry") as run:
            with pytest.raises(ValueError, match="always"):
                await afail.retry(3, "always")
        assert len(run.tasks) == 3

    @pytest.mark.parametrize(("attempts", "error"), [(0, ValueError), (1.5, TypeError)])
    def test_retry_checks_attempts(self, attempts: Any, error: type[Exception]) -> None:
        """retry needs an int of at least 1."""
        with dn.run("bad-retry"), pytest.raises(error, match="attempts"):
            double.retry(attempts, 1)


class TestMap:
    def test_sync_map_keeps_input_order(self) -> None:
        """map returns outputs in input order even when later calls finish first."""
        release = [threading.Event() for _ in range(4)]

        @dn.task
        def ordered(index: int) -> int:
            if index + 1 < len(release):
                assert release[index + 1].wait(10)  # finish only after the next one
            release[index].set()
            return index * 10

        with dn.run("order"):
            assert ordered.map([0, 1, 2, 3], concurrency=4) == [0, 10, 20, 30]

    @pytest.mark.anyio
    async def test_async_map_keeps_input_order(self) -> None:
        """Async map returns outputs in input order even when later calls finish first."""
        release = [anyio.Event() for _ in range(4)]

        @dn.task
        async def ordered(index: int) -> int:
            if index + 1 < len(release):
                await release[index + 1].wait()
            release[index].set()
            return index * 10

        async with dn.run("aorder"):
            assert await ordered.map([0, 1, 2, 3]) == [0, 10, 20, 30]

    def test_dict_of_argument_lists_and_fixed_keywords(self) -> None:
        """A dict of lists maps row by row; extra keywords go to every call."""

        @dn.task
        def power(base: int, exp: int, scale: int = 1) -> int:
            return int(scale * base**exp)

        with dn.run("dict"):
            assert power.map({"base": [2, 3], "exp": [3, 2]}, scale=10) == [80, 90]
            assert power.map([2, 3], exp=2) == [4, 9]
            assert power.map([]) == []

    @pytest.mark.parametrize(
        ("args", "error", "match"),
        [
            ({"a": [1, 2], "b": [1]}, ValueError, "same length"),
            ("abc", TypeError, "args must be"),
            (3, TypeError, "args must be"),
        ],
    )
    def test_bad_args_are_refused(self, args: Any, error: type[Exception], match: str) -> None:
        """Mismatched lists, strings and non-iterables raise, naming args."""
        with dn.run("bad-args"), pytest.raises(error, match=match):
            double.map(args)

    @pytest.mark.parametrize(("concurrency", "error"), [(0, ValueError), ("2", TypeError)])
    def test_bad_concurrency_is_refused(self, concurrency: Any, error: type[Exception]) -> None:
        """concurrency must be None or an int of at least 1."""
        with dn.run("bad-concurrency"), pytest.raises(error, match="concurrency"):
            double.map([1], concurrency=concurrency)

    def test_map_raises_the_first_failure_after_all_calls(self) -> None:
        """map raises the first failure in input order; every call still ran and is recorded."""

        @dn.task
        def check(x: int) -> int:
            if x % 2:
                raise ValueError(f"odd {x}")
            return x

        with dn.run("map-fail") as run:
            with pytest.raises(ValueError, match="odd 1"):
                check.map([0, 1, 2, 3])
            assert check.try_map([0, 1, 2, 3]) == [0, 2]
            spans = check.map_run([4, 5])
        assert len(run.tasks) == 10
        assert [span.failed for span in spans] == [False, True]

    @pytest.mark.anyio
    async def test_async_map_failure_and_try_map(self) -> None:
        """Async map raises the first failure; try_map leaves failures out."""

        @dn.task
        async def check(x: int) -> int:
            await anyio.lowlevel.checkpoint()
            if x % 2:
                raise ValueError(f"odd {x}")
            return x

        async with dn.run("amap-fail") as run:
            with pytest.raises(ValueError, match="odd 1"):
                await check.map([0, 1, 2, 3], concurrency=2)
            assert await check.try_map([0, 1, 2, 3]) == [0, 2]
        assert sum(span.failed for span in run.tasks) == 4

    def test_sync_concurrency_is_reached_and_never_exceeded(self) -> None:
        """concurrency=k runs exactly k calls at a time on worker threads."""
        k = 3
        barrier = threading.Barrier(k, timeout=10)  # breaks if fewer than k run together
        lock = threading.Lock()
        running = [0, 0]  # now, most

        @dn.task
        def work(x: int) -> int:
            with lock:
                running[0] += 1
                running[1] = max(running)
            barrier.wait()
            with lock:
                running[0] -= 1
            return x

        with dn.run("limit"):
            assert work.map(list(range(k * 4)), concurrency=k) == list(range(k * 4))
        assert running[1] == k

    @pytest.mark.anyio
    async def test_async_concurrency_is_reached_and_never_exceeded(self) -> None:
        """concurrency=k keeps at most k calls in flight, and k are in flight together."""
        k = 4
        running = [0, 0]

        @dn.task
        async def work(x: int) -> int:
            running[0] += 1
            running[1] = max(running)
            for _ in range(5):
                await anyio.lowlevel.checkpoint()
            running[0] -= 1
            return x

        async with dn.run("alimit"):
            assert await work.map(list(range(20)), concurrency=k) == list(range(20))
        assert running[1] == k

    def test_sync_map_carries_the_context_to_threads(self) -> None:
        """Each threaded call sees the caller's context: run, parent task and user variables."""
        user_var: contextvars.ContextVar[str] = contextvars.ContextVar("user_var")
        seen: list[tuple[str, str | None]] = []

        @dn.task
        def inner(x: int) -> int:
            run = dn.get_current_run()
            seen.append((user_var.get(), run.name if run else None))
            return x

        @dn.task
        def outer() -> list[int]:
            return inner.map([1, 2, 3], concurrency=3)

        with dn.run("ctx") as run:
            user_var.set("mine")
            assert outer() == [1, 2, 3]
        assert seen == [("mine", "ctx")] * 3
        (parent,) = run.tasks
        assert sorted(child.output or 0 for child in parent.tasks) == [1, 2, 3]

    def test_many(self) -> None:
        """many(n) calls the task n times with the same arguments."""
        with dn.run("many") as run:
            assert double.many(3, 5) == [10, 10, 10]
            assert fail.try_many(2, "x") == []
            spans = double.many_run(2, x=1)
            assert double.many(0, 1) == []
        assert [span.output for span in spans] == [2, 2]
        assert len(run.tasks) == 7

    @pytest.mark.anyio
    async def test_async_many(self) -> None:
        """Async many(n) awaits the task n times; failures raise, try_many leaves them out."""
        async with dn.run("amany"):
            assert await adouble.many(3, 5, concurrency=2) == [10, 10, 10]
            assert await afail.try_many(2, "x") == []
            with pytest.raises(ValueError, match="x"):
                await afail.many(2, "x")
            spans = await adouble.many_run(2, 1)
        assert spans.outputs == [2, 2]


class TestStreamMap:
    @pytest.mark.anyio
    async def test_async_spans_come_as_calls_finish(self) -> None:
        """stream_map yields each span when its call ends, not in input order."""
        gates = {name: anyio.Event() for name in "abc"}

        @dn.task
        async def wait_for(name: str) -> str:
            await gates[name].wait()
            return name

        async with dn.run("stream"):
            async with wait_for.stream_map(["a", "b", "c"]) as spans:
                gates["c"].set()
                order = []
                async for span in spans:
                    order.append(span.output)
                    if span.output == "c":
                        gates["a"].set()
                    elif span.output == "a":
                        gates["b"].set()
        assert order == ["c", "a", "b"]

    @pytest.mark.anyio
    async def test_async_leaving_early_cancels_the_rest(self) -> None:
        """Leaving the stream_map block early cancels the calls still running."""

        @dn.task
        async def maybe_forever(x: int) -> int:
            if x:
                await anyio.sleep_forever()
            return x

        async with dn.run("stream-early") as run:
            async with maybe_forever.stream_map([0, 1, 2]) as spans:
                async for span in spans:
                    assert span.output == 0
                    break
        outcomes = sorted((span.failed, span.inputs["x"]) for span in run.tasks)
        assert outcomes == [(False, 0), (True, 1), (True, 2)]

    @pytest.mark.anyio
    async def test_async_empty_stream(self) -> None:
        """stream_map over nothing yields nothing."""
        async with dn.run("stream-empty"), adouble.stream_map([]) as spans:
            assert [span async for span in spans] == []

    def test_sync_spans_come_as_calls_finish(self) -> None:
        """The sync stream_map yields spans from worker threads as they finish."""
        gates = {name: threading.Event() for name in "abc"}

        @dn.task
        def wait_for(name: str) -> str:
            assert gates[name].wait(10)
            return name

        with dn.run("stream-sync"), wait_for.stream_map(["a", "b", "c"], concurrency=3) as spans:
            gates["b"].set()
            order = []
            for span in spans:
                order.append(span.output)
                if span.output == "b":
                    gates["c"].set()
                elif span.output == "c":
                    gates["a"].set()
        assert order == ["b", "c", "a"]

    def test_sync_leaving_early_drops_pending_calls(self) -> None:
        """Leaving the sync block early drops calls not started yet."""
        with dn.run("stream-sync-early") as run:
            with double.stream_map(range(50), concurrency=1) as spans:
                next(iter(spans))
        assert 1 <= len(run.tasks) < 50


def _scored(values: list[float | None], *, failed: int | None = None) -> dn.TaskSpanList[int]:
    """Spans with a 'score' metric (None: no metric), one of them failed if asked."""
    spans: dn.TaskSpanList[int] = dn.TaskSpanList()
    for index, value in enumerate(values):
        span: dn.TaskSpan[int] = dn.TaskSpan(f"t{index}")
        span.output = index
        if value is not None:
            span.metrics["score"] = [dn.MetricPoint(value)]
        if index == failed:
            span.exception = ValueError("failed")
        spans.append(span)
    return spans


class TestTaskSpanList:
    def test_sorted_by_metric_best_first(self) -> None:
        """sorted(key) ranks by the metric's last value, highest first; missing and NaN last."""
        spans = _scored([0.2, None, 0.9, math.nan, 0.5])
        assert [s.output for s in spans.sorted(key="score")] == [2, 4, 0, 1, 3]
        assert [s.output for s in spans.sorted(key="score", reverse=False)] == [0, 4, 2, 1, 3]
        assert isinstance(spans.sorted(), dn.TaskSpanList)

    def test_sorted_default_key_and_callable_key(self) -> None:
        """The default key averages the last value of every metric; a callable key works too."""
        spans = _scored([1.0, 3.0])
        spans[0].metrics["other"] = [dn.MetricPoint(9.0)]  # mean 5.0 beats 3.0
        assert [s.output for s in spans.sorted()] == [0, 1]
        assert [s.output for s in spans.sorted(key=lambda s: -(s.output or 0))] == [0, 1]
        assert [s.output for s in spans.sorted(key=lambda s: s.output)] == [1, 0]

    def test_failed_spans_rank_last_and_never_top(self) -> None:
        """A failed span ranks last, and top_n leaves failed spans out."""
        spans = _scored([0.9, 0.5, 0.1], failed=0)
        assert [s.output for s in spans.sorted(key="score")] == [1, 2, 0]
        assert [s.output for s in spans.top_n(5, key="score")] == [1, 2]
        assert spans.top_n(1, key="score", as_outputs=True) == [1]
        assert [s.output for s in spans.failures] == [0]

    def test_top_n_from_scored_task_calls(self) -> None:
        """top_n picks the best calls of a task by its scorer's metric."""

        @dn.task(scorers=[dn.Scorer(lambda out: -abs(out - 10), name="closeness")])
        def guess(x: int) -> int:
            return x

        with dn.run("top"):
            spans = guess.map_run([3, 11, 20, 9])
        assert spans.top_n(2, as_outputs=True) == [11, 9]
        assert spans.top_n(0) == []

    @pytest.mark.parametrize(
        ("call", "error"),
        [
            (lambda spans: spans.sorted(key=3), TypeError),
            (lambda spans: spans.sorted(key=""), ValueError),
            (lambda spans: spans.top_n(-1), ValueError),
        ],
    )
    def test_bad_arguments(self, call: Any, error: type[Exception]) -> None:
        """A bad key or a negative n raises."""
        with pytest.raises(error):
            call(_scored([1.0]))


class TestHierarchy:
    def test_nested_tasks_form_a_tree(self, store: dn.Store) -> None:
        """Tasks called inside tasks are their children, live and in the store."""

        @dn.task
        def leaf(x: int) -> int:
            return x

        @dn.task
        def branch(x: int) -> int:
            return leaf(x) + leaf(x + 1)

        with dn.run("tree") as run:
            branch(1)
            leaf(9)
        assert [t.name for t in run.tasks] == ["branch", "leaf"]
        assert [t.name for t in run.all_tasks] == ["branch", "leaf", "leaf", "leaf"]
        assert [t.output for t in run.tasks[0].tasks] == [1, 2]
        record = store.run(run.run_id)
        assert [t.name for t in record.tasks] == ["branch", "leaf"]
        assert [t.output for t in record.tasks[0].tasks] == [1, 2]
        assert [t.depth for t in record.all_tasks] == [0, 1, 1, 0]
        assert all(child.parent_id == record.tasks[0].id for child in record.tasks[0].tasks)

    @pytest.mark.anyio
    @pytest.mark.parametrize("anyio_backend", ["asyncio"])
    async def test_asyncio_gather_keeps_parents(self) -> None:
        """Children started with asyncio.gather inside a task are its children."""

        @dn.task
        async def parent(n: int) -> list[int]:
            return list(await asyncio.gather(*(adouble(i) for i in range(n))))

        async with dn.run("gather") as run:
            first, second = await asyncio.gather(parent(2), parent(3))
        assert (first, second) == ([0, 2], [0, 2, 4])
        assert sorted(len(t.tasks) for t in run.tasks) == [2, 3]
        assert len(run.all_tasks) == 7

    @pytest.mark.anyio
    async def test_task_groups_and_threads_keep_parents(self) -> None:
        """Children from anyio task groups and anyio.to_thread.run_sync keep their parent."""

        @dn.task
        async def parent() -> None:
            async with anyio.create_task_group() as group:
                group.start_soon(adouble, 1)
                group.start_soon(adouble, 2)
            await anyio.to_thread.run_sync(double, 3)

        async with dn.run("groups") as run:
            await parent()
        (root,) = run.tasks
        assert sorted(child.name for child in root.tasks) == ["adouble", "adouble", "double"]
        assert all(child.parent_id == root.span_id for child in root.tasks)

    @pytest.mark.anyio
    async def test_concurrent_runs_keep_their_own_tasks(self, store: dn.Store) -> None:
        """Runs open at once in one task group never see each other's tasks."""

        async def one(name: str, count: int) -> None:
            async with dn.run(name) as run:
                await adouble.map(list(range(count)), concurrency=3)
                assert len(run.all_tasks) == count

        async with anyio.create_task_group() as group:
            group.start_soon(one, "left", 5)
            group.start_soon(one, "right", 7)
        counts = {record.name: len(record.all_tasks) for record in store.runs()}
        assert counts == {"left": 5, "right": 7}


def _doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


class TestDocs:
    def test_docs_have_examples(self) -> None:
        """docs/tasks.md shows the features with code examples."""
        assert len(_doc_blocks()) >= 10

    @pytest.mark.parametrize("index", range(len(_doc_blocks())))
    def test_doc_example_runs(self, index: int, store_dir: Path) -> None:
        """Each python example of docs/tasks.md runs as written, its asserts holding."""
        block = _doc_blocks()[index]
        exec(compile(block, f"{DOCS}#example-{index}", "exec"), {"__name__": f"doc_{index}"})
