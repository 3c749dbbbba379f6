"""The compact checkpoint of the small haze CLIP.

open_clip's token-embedding table has 49408 rows whatever the width; at width 128 that alone is
6.3 M numbers. Only the rows of tokens that occur in the caption vocabulary (a few dozen) ever
receive a gradient, so :func:`save_small_clip` stores just those rows (fp16) with their ids, and
:func:`load_small_clip_state` restores the rest as **zeros**: a word the model never saw
contributes nothing but its position. Everything else is stored in fp16 and loaded as float32.
The file is plain data (dicts of tensors, strings, numbers, lists), so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from cliphaze.clip.captions import caption_vocabulary
from cliphaze.clip.small_config import SMALL_CLIP_NAME, register_small_configs

__all__ = ["CHECKPOINT_FORMAT", "save_small_clip", "load_small_clip_state", "file_digest"]

CHECKPOINT_FORMAT = "cliphaze-compact-clip-v1"


def save_small_clip(model, path: str | os.PathLike, model_name: str = SMALL_CLIP_NAME, card: dict | None = None) -> Path:
    """Save ``model`` as a compact fp16 checkpoint (module docstring: only caption token rows).

    Args:
        model: open_clip ``CLIP`` built from ``model_name``'s config.
        path: output ``.pt`` file.
        model_name: registered open_clip config name (stored, checked at load).
        card: optional JSON-able training record stored with the weights.

    Returns:
        ``path``. The file holds ``{"format", "model_name", "config", "state_dict" (fp16, without
        the token table), "token_ids", "token_rows" (fp16), "card"}``.
    """
    import open_clip

    register_small_configs()
    tokenizer = open_clip.get_tokenizer(model_name)
    ids = tokenizer(caption_vocabulary()).flatten().unique()
    ids = ids[ids != 0]  # 0 is padding ("!" in the BPE vocabulary, never in our captions)
    state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items() if k != "token_embedding.weight"}
    rows = model.token_embedding.weight.detach()[ids].to(torch.float16)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model_name": model_name,
        "config": open_clip.get_model_config(model_name),
        "state_dict": state,
        "token_ids": ids,
        "token_rows": rows,
        "card": card or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, path)
    return path


def load_small_clip_state(model, payload: dict) -> None:
    """Fill ``model`` from a compact checkpoint ``payload`` (rows not stored become zeros)."""
    state = {k: v.float() for k, v in payload["state_dict"].items()}
    table = torch.zeros_like(model.token_embedding.weight)
    table[payload["token_ids"].long()] = payload["token_rows"].float()
    state["token_embedding.weight"] = table
    model.load_state_dict(state, strict=True)


def file_digest(path: str | os.PathLike, n: int = 12) -> str:
    """First ``n`` hex digits of the file's SHA-256 (identifies a checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]
