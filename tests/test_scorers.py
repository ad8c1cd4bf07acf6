"""Scorers: what they may return, sync and async, metrics on tasks and runs, assertions."""

from __future__ import annotations

import gc
import math
from fractions import Fraction
from typing import Any

import anyio.lowlevel
import pytest

import strikes as dn


def exact(output: str) -> bool:
    return output == "42"


async def length(output: str) -> int:
    await anyio.lowlevel.checkpoint()
    return len(output)


class TestScorer:
    def test_name_defaults_to_the_callable(self) -> None:
        """A Scorer is named after its function (or class) unless given a name."""

        class Judge:
            def __call__(self, output: str) -> float:
                return 1.0

        assert dn.Scorer(exact).name == "exact"
        assert dn.Scorer(Judge()).name == "Judge"
        assert dn.Scorer(exact, name="is exact").name == "is exact"
        assert dn.Scorer(length).is_async
        assert not dn.Scorer(exact).is_async

    def test_bad_scorers_are_refused(self) -> None:
        """A non-callable or a bad name raises, naming the argument."""
        with pytest.raises(TypeError, match="func must be callable"):
            dn.Scorer(3)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="name must not be empty"):
            dn.Scorer(exact, name=" ")

    @pytest.mark.parametrize(
        ("result", "value"),
        [
            (True, 1.0),
            (False, 0.0),
            (3, 3.0),
            (0.25, 0.25),
            (Fraction(1, 4), 0.25),
            (dn.MetricPoint(0.5), 0.5),
        ],
    )
    def test_numbers_bools_and_metrics_are_scores(self, result: object, value: float) -> None:
        """Numbers, bools and metric-like objects (a numeric .value) become float scores."""
        scorer: dn.Scorer[str] = dn.Scorer(lambda _: result)
        assert scorer.score("x") == value

    def test_other_results_raise_naming_the_scorer(self) -> None:
        """A scorer returning something else raises TypeError naming it."""
        with pytest.raises(TypeError, match="scorer 'word' must return a number"):
            dn.Scorer[str](lambda _: "high", name="word").score("x")

    def test_sync_score_refuses_async_scorers(self) -> None:
        """score() on an async scorer raises; score_async() is the way."""
        with pytest.raises(TypeError, match="is async"):
            dn.Scorer(length).score("abc")

    @pytest.mark.anyio
    async def test_score_async_takes_both_kinds(self) -> None:
        """score_async awaits async scorers and calls sync ones."""
        assert await dn.Scorer(length).score_async("abc") == 3.0
        assert await dn.Scorer(exact).score_async("42") == 1.0


class TestScoredTasks:
    def test_scores_are_task_metrics_mirrored_on_the_run(self, store: dn.Store) -> None:
        """Each score is a task metric named after the scorer, and <label>.<name> on the run."""

        @dn.task(name="Answer Question", scorers=[exact, dn.Scorer(len, name="chars")])
        def answer(question: str) -> str:
            return "42" if "life" in question else "no idea"

        with dn.run("scored") as run:
            assert answer("life?") == "42"
            answer("weather?")
        good, bad = run.tasks
        assert good.metrics["exact"][0].value == 1.0
        assert bad.last_metric("exact") == 0.0
        assert bad.last_metric("chars") == 7.0
        record = store.run(run.run_id)
        assert [p.value for p in record.metrics["answer_question.exact"]] == [1.0, 0.0]
        assert [p.value for p in record.metrics["answer_question.chars"]] == [2.0, 7.0]
        assert record.all_tasks[1].metrics["chars"][0].value == 7.0

    @pytest.mark.anyio
    async def test_async_task_takes_sync_and_async_scorers(self) -> None:
        """An async task awaits async scorers and calls sync ones, in order."""

        @dn.task(scorers=[length, exact])
        async def answer() -> str:
            return "42"

        async with dn.run("ascored"):
            span = await answer.run()
        assert list(span.metrics) == ["length", "exact"]
        assert (span.last_metric("length"), span.last_metric("exact")) == (2.0, 1.0)

    def test_sync_task_refuses_async_scorers(self) -> None:
        """A sync task with an async scorer is refused at decoration, naming the scorer."""
        with pytest.raises(TypeError, match=r"scorers \['length'\] are async"):
            dn.task(scorers=[length])(lambda: "x")

    def test_sync_scorer_returning_a_coroutine_fails_the_task_cleanly(self) -> None:
        """A sync-looking scorer that returns a coroutine fails the call; no unawaited warning."""

        def sneaky(output: str) -> Any:
            return length(output)

        @dn.task(scorers=[sneaky])
        def f() -> str:
            return "x"

        with dn.run("sneaky"):
            span = f.run()
        assert isinstance(span.exception, TypeError)
        assert "returned an awaitable" in str(span.exception)
        del span
        gc.collect()  # a never-awaited coroutine would warn here (warnings are errors)

    def test_a_failing_scorer_fails_the_call(self) -> None:
        """An exception in a scorer fails the task; calling it raises, run() keeps it."""

        def broken(output: int) -> float:
            raise RuntimeError("scorer broke")

        @dn.task(scorers=[broken])
        def f() -> int:
            return 1

        with dn.run("broken") as run:
            with pytest.raises(RuntimeError, match="scorer broke"):
                f()
            assert f.run().failed
        assert all(span.output == 1 for span in run.tasks)


class TestAssertScores:
    def test_falsy_asserted_score_fails_the_task(self, store: dn.Store) -> None:
        """assert_scores=True fails a call whose score is 0 or False; the score is still logged."""

        @dn.task(scorers=[exact], assert_scores=True)
        def answer(guess: str) -> str:
            return guess

        with dn.run("asserted") as run:
            assert answer("42") == "42"
            with pytest.raises(dn.ScoreAssertionError, match=r"exact=0\.0") as caught:
                answer("41")
            failed = answer.run("40")
        assert caught.value.scores == {"exact": 0.0}
        assert caught.value.task == "answer"
        assert failed.failed
        assert failed.output == "40"
        assert failed.last_metric("exact") == 0.0
        statuses = [task.status for task in store.run(run.run_id).all_tasks]
        assert statuses == ["finished", "failed", "failed"]

    def test_only_named_scores_are_asserted(self) -> None:
        """assert_scores=[names] checks only those scorers."""

        @dn.task(scorers=[exact, dn.Scorer(lambda _: 0, name="zero")], assert_scores=["exact"])
        def answer() -> str:
            return "42"

        with dn.run("named"):
            assert answer() == "42"

    @pytest.mark.anyio
    async def test_nan_fails_an_asserted_score(self) -> None:
        """A NaN score fails an assertion (it is not a passing value)."""

        @dn.task(scorers=[dn.Scorer(lambda _: math.nan, name="nan")], assert_scores=True)
        async def f() -> int:
            return 1

        async with dn.run("nan"):
            span = await f.run()
        assert isinstance(span.exception, dn.ScoreAssertionError)
        assert math.isnan(span.exception.scores["nan"])
