"""The README's Python examples run as written and store what they say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import strikes as dn

README = Path(__file__).parent.parent / "README.md"


def test_readme_python_blocks_run_in_order(
    store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ```python block of the README runs, in order, in one namespace."""
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
    (record,) = dn.open_store(store_dir).runs(project="my-project")
    assert record.name == "training-lr-0.01"
    assert record.metrics["evaluate.accuracy"][0].value == 0.93
    assert record.attributes == {"environment": "staging"}
    (evaluation,) = dn.open_store(store_dir).runs(project="evals")
    assert [task.output for task in evaluation.tasks] == ["4", "4"]
    assert [task.metrics["exact"][0].value for task in evaluation.tasks] == [1.0, 1.0]
    assert evaluation.metrics["ask.exact"][0].value == 1.0
    exported = (tmp_path / "runs.csv").read_text().splitlines()
    assert len(exported) == 2
    assert record.id in exported[1]
    (traced,) = dn.open_store(store_dir).runs(project="provenance")
    assert traced.provenance is not None
    assert traced.provenance.packages_hash is not None
    assert traced.crashed is False
