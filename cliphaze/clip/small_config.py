"""``haze-clip-small`` and ``tiny-test-clip``: the open_clip configs of the small CLIPs and their
registration with open_clip (so they load through the same factory as ``ViT-B-32``).

The shipped small CLIP is trained by :mod:`cliphaze.clip.small_train`; its file format is
:mod:`cliphaze.clip.compact`. Lesson: ``notebooks/02_prompt_learning.ipynb``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from cliphaze.defaults import SHIPPED_GUIDE
from cliphaze.paths import ASSETS_DIR

__all__ = ["SMALL_CLIP_NAME", "TINY_TEST_CLIP_NAME", "SMALL_CLIP_CONFIG", "TINY_TEST_CLIP_CONFIG",
           "SHIPPED_SMALL_CLIP", "register_small_configs"]

SMALL_CLIP_NAME = SHIPPED_GUIDE   # the shipped guide is this config with its trained weights
TINY_TEST_CLIP_NAME = "tiny-test-clip"
SHIPPED_SMALL_CLIP = ASSETS_DIR / "haze_clip_small.pt"

#: The shipped small CLIP: a 4-layer ViT on 64 x 64 inputs with 8 x 8 patches (an 8 x 8 token
#: grid), a 3-layer text transformer over 24 tokens, a 128-d joint space. ``pool_type="avg"``: the
#: image embedding is the mean of the projected patch tokens, so every patch token lives in the
#: same space as the global embedding (what the dense density method needs).
SMALL_CLIP_CONFIG = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8, "pool_type": "avg"},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 3},
}

#: A randomly initialised CLIP for unit tests only: tiny so a forward pass takes milliseconds.
TINY_TEST_CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 16, "head_width": 8, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}

_REGISTERED = False


def register_small_configs() -> None:
    """Register ``haze-clip-small`` and ``tiny-test-clip`` with open_clip (idempotent).

    open_clip only reads configs from JSON files (``open_clip.add_model_config``), so the two
    dicts above are written to a temporary folder once per process; open_clip parses them when
    the folder is added, and the folder is removed straight after.
    """
    global _REGISTERED
    if _REGISTERED:
        return
    import open_clip

    with tempfile.TemporaryDirectory(prefix="cliphaze_clip_cfg_") as tmp:
        folder = Path(tmp)
        for name, cfg in ((SMALL_CLIP_NAME, SMALL_CLIP_CONFIG), (TINY_TEST_CLIP_NAME, TINY_TEST_CLIP_CONFIG)):
            (folder / f"{name}.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(folder)
    if SMALL_CLIP_NAME not in open_clip.list_models():
        raise RuntimeError(f"open_clip did not register the {SMALL_CLIP_NAME} config")
    _REGISTERED = True

