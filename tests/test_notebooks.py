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
SOLUTION_DIR = NOTEBOOK_DIR / "solutions"
SOLUTIONS = sorted(SOLUTION_DIR.glob("[0-9][0-9]_*.ipynb"))


def _ci_parameters(path: Path) -> dict:
    """A lesson's CI parameters come from ci_parameters.json, a solution's from its own metadata."""
    if path.parent == SOLUTION_DIR:
        return nbformat.read(path, as_version=4).metadata.get("ci_parameters", {})
    return CI_PARAMETERS.get(path.name, {})


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
    assert any("use_projector_style()" in c.source for c in code), \
        f"{path.name}: figures must use cliphaze.plotting.use_projector_style() (100 dpi, >= 10 pt, JPEG)"
    executed = [c for c in code if c.get("execution_count")]
    assert len(executed) == len(code), f"{path.name}: committed without outputs (run `make notebooks`)"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{path.name}: committed outputs contain an error"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_lesson_ends_with_exercises_and_has_a_solution(path):
    nb = nbformat.read(path, as_version=4)
    heads = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.lstrip().startswith("## Exercises")]
    assert heads, f"{path.name}: no '## Exercises' section"
    rest = nb.cells[heads[-1]:]
    text = "\n".join(c.source for c in rest if c.cell_type == "markdown")
    import re
    numbered = re.findall(r"^\s*(?:\*\*)?(?:Exercise\s+)?(\d+)[.)]", text, flags=re.M)
    assert len(set(numbered)) >= 3, f"{path.name}: the Exercises section has {len(set(numbered))} numbered exercises, want >= 3"
    solution = SOLUTION_DIR / path.name
    assert solution.exists(), f"{path.name}: no worked solutions at notebooks/solutions/{path.name}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: f"solutions/{p.name}")
def test_solution_is_committed_executed(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "first code cell must be tagged 'parameters'"
    assert path.stat().st_size < 1_500_000, f"{path.name} is {path.stat().st_size / 1e6:.1f} MB"
    assert all(c.get("execution_count") for c in code), f"solutions/{path.name}: committed without outputs"
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"solutions/{path.name}: committed outputs contain an error"
    assert (NOTEBOOK_DIR / path.name).exists(), f"solutions/{path.name} has no lesson of the same name"


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS,
                         ids=lambda p: p.name if p.parent == NOTEBOOK_DIR else f"solutions/{p.name}")
def test_notebook_runs_headless(path, tmp_path):
    import papermill

    params = _ci_parameters(path)
    env_before = dict(os.environ)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(path),
            str(tmp_path / path.name),
            parameters=params,
            cwd=str(path.parent),
            kernel_name="python3",
            progress_bar=False,
        )
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    print(f"{path.name}: {time.perf_counter() - start:.1f} s with CI parameters {params}")
