"""Every lesson runs headless, and every lesson is a lesson (prose, a parameters cell, small size).

Execution uses papermill with the parameters in ``notebooks/ci_parameters.json`` (small CPU values;
missing keys keep the notebook's own defaults), in a temporary copy so the committed outputs stay
as ``make notebooks`` produced them. Marked ``notebook``: ``pytest -m "not notebook"`` runs the unit
tests alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
CI_PARAMETERS = json.loads((NOTEBOOK_DIR / "ci_parameters.json").read_text())


def test_every_lesson_is_listed_and_found():
    assert NOTEBOOKS, f"no lessons found in {NOTEBOOK_DIR}"
    unknown = set(CI_PARAMETERS) - {p.name for p in NOTEBOOKS} - {"_comment"}
    assert not unknown, f"ci_parameters.json names notebooks that do not exist: {unknown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_a_lesson(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    prose = [c for c in nb.cells if c.cell_type == "markdown"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert len(prose) >= len(code) // 2, f"{path.name}: {len(prose)} markdown cells for {len(code)} code cells"
    assert path.stat().st_size < 3_000_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    assert not any(".cuda()" in c.source for c in code), "no hard-coded .cuda() in lessons"
    executed = [c for c in code if c.get("execution_count")]
    assert len(executed) == len(code), f"{path.name}: committed without outputs (run `make notebooks`)"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed outputs contain an error"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_headless(path, tmp_path):
    import papermill

    params = CI_PARAMETERS.get(path.name, {})
    env_before = dict(os.environ)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(tmp_path / path.name),
            parameters=params,
            cwd=str(NOTEBOOK_DIR),
            kernel_name="python3",
            progress_bar=False,
        )
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s with CI parameters {params}")
