"""Quickstart: a few real runs in the embedded local store, then read them back.

Run it with `python examples/quickstart.py`; the runs land in ./.strikes
(or $STRIKES_DIR), and the script prints where.
"""

from __future__ import annotations

import asyncio
import math
import random

import strikes as dn


def train_model(lr: float) -> dict[str, float]:
    """A stand-in for training: accuracy rises as the learning rate nears 0.01."""
    return {"accuracy": round(0.95 - abs(math.log10(lr) + 2) * 0.1, 4)}


def sweep() -> None:
    """Independent runs, one per learning rate, each with a loss curve."""
    for lr in [0.1, 0.01, 0.001]:
        with dn.run(f"training-lr-{lr}", project="quickstart", tags=["sweep"]):
            dn.log_param("learning_rate", lr)
            for epoch in range(50):
                loss = math.exp(-epoch * lr * 10) + random.random() * 0.01
                dn.log_metric("loss", loss, step=epoch)
            dn.log_metric("accuracy", train_model(lr)["accuracy"])


async def parallel() -> None:
    """Runs side by side under asyncio.gather, each with its own tasks and metrics."""

    async def run_experiment(config: dict[str, float]) -> None:
        with dn.run(f"experiment-{config['id']}", project="quickstart", tags=["parallel"]):
            dn.log_params(**config)
            for step in range(20):
                with dn.task_span("evaluate batch"):
                    dn.log_input("batch", step)
                    await asyncio.sleep(0.001)
                    dn.log_metric("score", random.random(), step=step)
            dn.log_metrics(final_loss=config["learning_rate"] * 3, step=20)

    configs = [
        {"id": 1, "learning_rate": 0.1, "batch_size": 32},
        {"id": 2, "learning_rate": 0.01, "batch_size": 64},
        {"id": 3, "learning_rate": 0.001, "batch_size": 128},
    ]
    await asyncio.gather(*[run_experiment(config) for config in configs])


def main() -> None:
    """Write the runs, then list them from the store."""
    sweep()
    asyncio.run(parallel())
    store = dn.open_store()
    runs = store.runs(project="quickstart")
    print(f"{len(runs)} runs in {store.path}:")
    for record in runs:
        metrics = ", ".join(
            f"{name}[{len(points)}]" for name, points in sorted(record.metrics.items())
        )
        print(f"  {record.id}  {record.name:<22} {record.status:<9} {metrics}")


if __name__ == "__main__":
    main()
