"""environment.yml, pyproject.toml and the CLI stay in agreement."""

import re
import subprocess
import sys

import tomllib
import yaml


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    declared = {_name(r): r.replace(" ", "") for r in project["dependencies"]}
    for extra in ("notebooks", "dev"):
        declared.update({_name(r): r.replace(" ", "") for r in project["optional-dependencies"][extra]})
    env = yaml.safe_load((repo_root / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert '-e ".[notebooks,dev]"' in pip_section
    listed = {_name(r): r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert listed == declared, f"environment.yml and pyproject.toml differ: {set(listed) ^ set(declared)} or in versions"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = tuple(int(x) for x in project["requires-python"].lstrip(">=").split("."))
    assert tuple(int(x) for x in py.split("=")[1].split(".")) >= minimum


def test_cuda_extra_is_not_a_core_dependency(repo_root):
    project = tomllib.loads((repo_root / "pyproject.toml").read_text())["project"]
    assert "mamba-ssm" not in {_name(r) for r in project["dependencies"]}
    assert "mamba-ssm" in {_name(r) for r in project["optional-dependencies"]["cuda"]}


def test_console_script_help_lists_subcommands():
    out = subprocess.run([sys.executable, "-m", "cliphaze", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for cmd in ("haze", "data", "env", "eval"):
        assert cmd in out.stdout


def test_env_check_reports_ok_lines():
    out = subprocess.run([sys.executable, "-m", "cliphaze.env_check"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[OK] torch" in out.stdout and "[OK] open_clip_torch" in out.stdout
    assert "mamba-ssm" in out.stdout and "CLIP weights" in out.stdout
    from cliphaze.hostinfo import cpu_model
    from cliphaze.ssm import resolve_backend

    assert f"[OK] CPU: {cpu_model()}" in out.stdout
    assert f"selective scan on CPU tensors: {resolve_backend('cpu')} backend" in out.stdout


def test_vector_isa_names_the_widest_instruction_set():
    from cliphaze.hostinfo import cpu_description, cpu_features, vector_isa

    assert vector_isa({"sse4_2", "avx", "avx2", "fma", "avx512f"}) == "AVX-512"
    assert vector_isa({"sse4_2", "avx", "avx2", "fma"}) == "AVX2"
    assert vector_isa({"sse2", "avx"}) == "AVX"
    assert vector_isa({"sse2"}) == "SSE"
    assert vector_isa({"neon"}) == vector_isa(set()) == "unknown"
    # the description names this machine's instruction set, as the benchmark headers print it
    _, feats = cpu_features()
    assert vector_isa(feats) in cpu_description()


def test_ci_runs_the_readme_test_command(repo_root):
    readme = (repo_root / "README.md").read_text()
    ci = (repo_root / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.S)
    test_cmds = [line.strip() for b in blocks for line in b.splitlines() if "pytest" in line]
    assert test_cmds, "README has no test command"
    assert any(cmd in ci for cmd in test_cmds), f"CI does not call the README's test command {test_cmds}"
