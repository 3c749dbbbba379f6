"""Environment check: ``python -m cliphaze.env_check`` or ``cliphaze env``.

Prints one ``[OK]`` / ``[FAIL]`` line per required dependency, ``[OK]`` / ``[--]`` for optional
ones (notebooks, dev tools, the CUDA fast path), what torch sees (CUDA devices), and which CLIP
weights are on this machine: the project's shipped ones and any open_clip / Hugging Face cache
entries. Exit status 1 when a required dependency is missing.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

REQUIRED = [
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("open_clip", "open_clip_torch"),
    ("numpy", "numpy"),
    ("PIL", "pillow"),
    ("matplotlib", "matplotlib"),
    ("tqdm", "tqdm"),
    ("pytorch_msssim", "pytorch-msssim"),
    ("skimage", "scikit-image"),
    ("scipy", "scipy"),
    ("numba", "numba"),
]
OPTIONAL = [
    ("papermill", "papermill (notebooks extra)"),
    ("nbval", "nbval (notebooks extra)"),
    ("jupyterlab", "jupyterlab (notebooks extra)"),
    ("ipywidgets", "ipywidgets (notebooks extra)"),
    ("pytest", "pytest (dev extra)"),
    ("ruff", "ruff (dev extra)"),
    ("sklearn", "scikit-learn (dev extra)"),
    ("mambapy", "mambapy (bench extra)"),
]


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


def run_checks(stream=sys.stdout) -> int:
    """Print the report; return the number of missing required dependencies."""
    missing = 0
    print(f"python {sys.version.split()[0]} ({sys.executable})", file=stream)
    print("required:", file=stream)
    for mod, label in REQUIRED:
        ok, info = _probe(mod)
        missing += not ok
        print(f"  [{'OK' if ok else 'FAIL'}] {label:<18} {info}", file=stream)
    print("optional:", file=stream)
    for mod, label in OPTIONAL:
        ok, info = _probe(mod)
        print(f"  [{'OK' if ok else '--'}] {label:<32} {info if ok else 'not installed'}", file=stream)
    print("compute:", file=stream)
    try:
        import torch

        cuda = torch.cuda.is_available()
        devs = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else ""
        print(f"  [{'OK' if cuda else '--'}] CUDA {'available: ' + devs if cuda else 'not available (CPU path: the pure-PyTorch scan)'}", file=stream)
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
