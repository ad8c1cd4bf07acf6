"""An LLM-style evaluation loop: an async task per sample, scorers, concurrency, a report.

Run it with `python examples/eval_loop.py`; the run lands in ./.strikes (or $STRIKES_DIR)
and the script prints where. Swap `stand_in_model()` for a call to your model.
"""

from __future__ import annotations

import asyncio
import random

import strikes as dn

QUESTIONS = [(f"{a} + {b} = ?", a + b) for a in range(1, 11) for b in range(1, 11)]


async def stand_in_model(question: str, truth: int) -> int:
    """Slow-ish and right 80% of the time, like a small model on arithmetic."""
    await asyncio.sleep(random.uniform(0.001, 0.005) * len(question) / 10)
    return truth if random.random() < 0.8 else truth + random.choice([-1, 1])


def correct(result: dict[str, int]) -> bool:
    """Scorer (a plain function): did the model give the right sum?"""
    return result["answer"] == result["truth"]


closeness = dn.Scorer(
    lambda result: 1 / (1 + abs(result["answer"] - result["truth"])), name="closeness"
)


@dn.task(scorers=[correct, closeness])
async def solve(question: str, truth: int) -> dict[str, int]:
    """One sample: ask the model, keep its answer next to the truth for the scorers."""
    dn.log_metric("question_words", len(question.split()))
    return {"answer": await stand_in_model(question, truth), "truth": truth}


async def main() -> None:
    questions, truths = zip(*QUESTIONS, strict=True)
    with dn.run("arithmetic-eval", project="evals", tags=["example"]) as run:
        dn.log_params(model="stand-in", samples=len(QUESTIONS), concurrency=20)
        spans = await solve.map_run({"question": questions, "truth": truths}, concurrency=20)
        accuracy = sum(span.metrics["correct"][0].value for span in spans) / len(spans)
        dn.log_metric("accuracy", accuracy)
        worst = spans.sorted(key="closeness")[-1]  # sorted best first
    store = dn.open_store()
    record = store.run(run.run_id)
    print(f"run {record.id} ({record.name}, {record.status}) in {store.path}")
    print(f"  {len(record.tasks)} samples, accuracy {record.metrics['accuracy'][-1].value:.2f}")
    print(f"  worst: {worst.inputs['question']} -> {worst.output['answer']}")


if __name__ == "__main__":
    asyncio.run(main())
