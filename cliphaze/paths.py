"""Where the project finds things: the repository, shipped assets, sample images and the optional
development data folder (``$CLIPHAZE_SHARED_DATA``, or ``shared/data`` beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PACKAGE_DIR", "ASSETS_DIR", "repo_root", "samples_dir", "shared_data_dir"]

PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"


def repo_root() -> Path | None:
    """The checkout holding this package (None for a non-editable install)."""
    root = PACKAGE_DIR.parent
    return root if (root / "pyproject.toml").is_file() else None


def samples_dir() -> Path:
    """``data/samples`` of the checkout: the few demo images the project ships."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError("data/samples is part of the git checkout; clone the repository to use it")
    return root / "data" / "samples"


def shared_data_dir() -> Path | None:
    """Development data (BSDS500, SOTS-indoor subset, AOD-Net weights), or None when absent.

    Looked up in ``$CLIPHAZE_SHARED_DATA``, then in a ``shared/data`` folder beside the checkout.
    """
    env = os.environ.get("CLIPHAZE_SHARED_DATA")
    candidates = [Path(env)] if env else []
    root = repo_root()
    if root is not None:
        candidates.append(root.parent / "shared" / "data")
    candidates.append(Path.cwd().parent.parent / "shared" / "data")
    for c in candidates:
        if c.is_dir():
            return c.resolve()
    return None
