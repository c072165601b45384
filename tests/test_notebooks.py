"""Every notebook's code cells run top to bottom without error (so notebooks cannot rot)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path):
    cells = json.loads(path.read_text())["cells"]
    code = [("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    assert code, f"{path.name} has no code cells"
    namespace: dict = {}
    for index, source in enumerate(code):
        exec(compile(source, f"{path.name}[cell {index}]", "exec"), namespace)
    assert "result" in namespace and len(namespace["result"].mdad) > 0


def test_there_is_a_notebook():
    assert NOTEBOOKS
