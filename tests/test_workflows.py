"""The GitHub workflows: actionlint finds nothing, and they run what the README says.

The CPU workflow must run the README's test command verbatim; the GPU workflow must target the
self-hosted ``gpu`` runner, install the ``cuda`` extra and fail when a CUDA test is skipped.
actionlint itself comes from the ``lint`` extra (``pip install -e ".[lint]"``); without its binary
the actionlint test is skipped and says so, the structural checks still run.
"""

from __future__ import annotations

import re
import shutil
import subprocess

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


def test_actionlint_passes(repo_root):
    exe = shutil.which("actionlint")
    if exe is None:
        pytest.skip("actionlint is not installed (pip install -e \".[lint]\" where its binary can be fetched)")
    files = sorted(str(p) for p in (repo_root / ".github" / "workflows").glob("*.yml"))
    assert files
    out = subprocess.run([exe, *files], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


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
