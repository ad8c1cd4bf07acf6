"""The scripts in examples/ run as a user would run them and leave what they print in the store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import strikes as dn

EXAMPLES = Path(__file__).parent.parent / "examples"


def run_example(name: str, store_dir: Path) -> str:
    """Run ``examples/<name>`` in a fresh interpreter writing to ``store_dir``; its stdout."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env={**os.environ, "STRIKES_DIR": str(store_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart_writes_six_runs_and_lists_them(tmp_path: Path) -> None:
    """Three sweep runs and three gathered runs land in the store, as the script prints."""
    output = run_example("quickstart.py", tmp_path / "store")
    assert f"6 runs in {tmp_path / 'store'}" in output
    runs = dn.open_store(tmp_path / "store").runs(project="quickstart")
    assert sorted(record.name for record in runs) == [
        "experiment-1",
        "experiment-2",
        "experiment-3",
        "training-lr-0.001",
        "training-lr-0.01",
        "training-lr-0.1",
    ]
    assert all(record.status == "finished" for record in runs)
    sweep = next(record for record in runs if record.name == "training-lr-0.01")
    assert len(sweep.metrics["loss"]) == 50
    assert sweep.params == {"learning_rate": 0.01}
    parallel = next(record for record in runs if record.name == "experiment-2")
    assert len(parallel.tasks) == 20
    assert parallel.params["batch_size"] == 64
    for record in runs:
        assert record.id in output


def test_eval_loop_scores_every_sample(tmp_path: Path) -> None:
    """100 scored samples, accuracy on the run equal to the share of correct scores."""
    output = run_example("eval_loop.py", tmp_path / "store")
    (record,) = dn.open_store(tmp_path / "store").runs(project="evals")
    assert record.id in output
    assert "100 samples" in output
    assert len(record.tasks) == 100
    correct = [task.metrics["correct"][0].value for task in record.tasks]
    assert set(correct) <= {0.0, 1.0}
    assert record.metrics["accuracy"][-1].value == sum(correct) / 100
    assert len(record.metrics["solve.closeness"]) == 100
    assert record.params == {"model": "stand-in", "samples": 100, "concurrency": 20}
    first = record.tasks[0]
    assert first.inputs == {"question": "1 + 1 = ?", "truth": 2}
    assert first.output["truth"] == 2
