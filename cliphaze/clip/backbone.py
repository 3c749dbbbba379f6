"""Loading CLIP backbones through open_clip, offline-safe.

Four ways in, one code path (``open_clip.create_model``) underneath:

- the shipped **haze-clip-small** (default; a compact checkpoint in ``cliphaze/assets``, see
  :mod:`cliphaze.clip.small_config`);
- any open_clip **model name + pretrained tag** (``"ViT-B-32", pretrained="openai"``), used when
  the weights are already in the Hugging Face cache;
- a **local checkpoint** (``.pt``/``.bin``/``.safetensors`` state dict, or open_clip's
  ``local-dir:/folder`` holding ``open_clip_config.json`` and weights);
- a **DA-CLIP** checkpoint (``daclip_ViT-B-32.pt``), see :mod:`cliphaze.clip.daclip`.

Nothing here ever waits on the network: ``HF_HUB_OFFLINE`` is set to 1 unless the caller has set
it (open_clip otherwise retries the hub for about 45 s before failing), and a pretrained tag whose
file is not cached raises :class:`MissingWeightsError` at once, naming the model, the expected
file and how to supply it. Lesson: ``notebooks/01_clip_zero_shot_density.ipynb``, section
"Which CLIP?".
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from cliphaze.clip.compact import CHECKPOINT_FORMAT, file_digest, load_small_clip_state
from cliphaze.clip.small_config import SHIPPED_SMALL_CLIP, SMALL_CLIP_NAME, register_small_configs

__all__ = [
    "MissingWeightsError",
    "BackboneInfo",
    "create_backbone",
    "preprocess_stats",
    "cached_pretrained_file",
    "find_cached_clip",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class MissingWeightsError(FileNotFoundError):
    """CLIP weights that are not on this machine; the message says which file and how to get it."""


@dataclass(frozen=True)
class BackboneInfo:
    """What a loaded backbone is; ``identity`` ties learned prompts to it.

    Attributes:
        model_name: open_clip config name (``"ViT-B-32"``, ``"haze-clip-small"``).
        source: pretrained tag, checkpoint path, ``"random"`` or ``"shipped"``.
        identity: ``"<model_name>|<tag or file digest>"``; learned prompts store it and refuse a
            backbone with another identity.
        description: one human line for figure titles ("haze-clip-small (trained here, not OpenAI
            CLIP)").
    """

    model_name: str
    source: str
    identity: str
    description: str


def preprocess_stats(model) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP's per-channel normalisation ``(mean, std)`` for ``model``, each ``(3,)`` float32."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    visual = getattr(model, "visual", model)
    cfg = getattr(visual, "preprocess_cfg", None) or {}
    mean = cfg.get("mean", getattr(visual, "image_mean", None) or OPENAI_DATASET_MEAN)
    std = cfg.get("std", getattr(visual, "image_std", None) or OPENAI_DATASET_STD)
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)


def _how_to_supply(model_name: str, tag: str, filename: str, where: str) -> str:
    return (
        f"CLIP weights for model '{model_name}' with pretrained tag '{tag}' are not on this machine "
        f"(expected file '{filename}' {where}). To supply them: on a machine with network access run "
        f"`python -c \"import open_clip; open_clip.create_model('{model_name}', pretrained='{tag}')\"` "
        f"(it fills the Hugging Face cache, ~/.cache/huggingface, which you can copy here), or pass a "
        f"local file: load_clip('{model_name}', pretrained='/path/to/{filename}'). Offline, the shipped "
        f"'{SMALL_CLIP_NAME}' backbone is always available: load_clip()."
    )


def _split_hub(hub: str) -> tuple[str, str]:
    """open_clip's ``hf_hub`` entry -> ``(repo_id, filename)``; a trailing slash means the
    default file name ``open_clip_pytorch_model.bin``."""
    if hub.endswith("/"):
        return hub.rstrip("/"), "open_clip_pytorch_model.bin"
    repo, filename = os.path.split(hub)
    return repo, filename


@contextlib.contextmanager
def _quiet_open_clip():
    """Silence open_clip's root-logger warning "No pretrained weights loaded" for configs we
    fill ourselves (compact checkpoints, random init)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def cached_pretrained_file(model_name: str, tag: str) -> str | None:
    """Path of the cached weight file for an open_clip ``(model_name, tag)``, or None.

    Only looks (Hugging Face cache, or open_clip's URL cache for tags without a hub entry); never
    downloads.

    Raises:
        ValueError: ``tag`` is not a pretrained tag open_clip knows for ``model_name``.
    """
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        raise ValueError(
            f"'{tag}' is neither a file nor a pretrained tag of open_clip model '{model_name}'; "
            f"known tags: {open_clip.list_pretrained_tags_by_model(model_name)}"
        )
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = _split_hub(hub)
        names = [filename.replace(".bin", ".safetensors"), filename, "open_clip_model.safetensors"]
        for name in names:
            found = try_to_load_from_cache(repo_id=repo, filename=name)
            if isinstance(found, str) and os.path.isfile(found):
                return found
    url = cfg.get("url", "")
    if url:
        path = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if path.is_file():
            return str(path)
    return None


def _expected_file(model_name: str, tag: str) -> tuple[str, str]:
    from open_clip.pretrained import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag) or {}
    if cfg.get("hf_hub"):
        repo, filename = _split_hub(cfg["hf_hub"])
        return filename, f"of Hugging Face repo '{repo}' in the local cache"
    if cfg.get("url"):
        return os.path.basename(cfg["url"]), f"downloaded from {cfg['url']}"
    return f"{model_name}-{tag}.pt", "(no download location known)"


def _load_compact(path: Path):
    """Load a compact checkpoint written by :func:`cliphaze.clip.compact.save_small_clip`."""
    import open_clip

    from cliphaze.serialization import safe_torch_load

    payload = safe_torch_load(path, map_location="cpu", what="CLIP checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        return None, None
    register_small_configs()
    name = payload["model_name"]
    if name not in open_clip.list_models():
        raise ValueError(f"{path}: checkpoint for unknown model config '{name}'")
    with _quiet_open_clip():
        model = open_clip.create_model(name, pretrained=None)
    load_small_clip_state(model, payload)
    return model, payload


def create_backbone(
    model_name: str | None = None, pretrained: str | None = None, device: str | torch.device = "cpu", seed: int = 0
):
    """Build an open_clip model and describe it (see :func:`cliphaze.clip.load_clip` for the rules).

    Args:
        model_name: open_clip config name, ``"local-dir:/folder"``, a compact checkpoint path, or
            None for the shipped ``haze-clip-small``.
        pretrained: tag (``"openai"``), weight file path, ``"random"`` (seeded random init, for
            baselines and tests) or None (shipped weights for ``haze-clip-small``; random
            otherwise is refused: ask for ``"random"`` explicitly).
        device: where the model goes.
        seed: seed for ``pretrained="random"``.

    Returns:
        ``(model, info)``: the open_clip model in eval mode and a :class:`BackboneInfo`.

    Raises:
        MissingWeightsError: weights for a tag are not cached, or a file is missing (immediately).
    """
    import open_clip

    register_small_configs()
    if model_name is None:
        model_name = SMALL_CLIP_NAME
    # A path to a compact checkpoint passed as the model name.
    if model_name.endswith(".pt") and os.path.isfile(model_name):
        model, payload = _load_compact(Path(model_name))
        if model is None:
            raise ValueError(f"{model_name}: not a compact cliphaze checkpoint; pass the model name and pretrained=path")
        name = payload["model_name"]
        info = BackboneInfo(name, str(model_name), f"{name}|{file_digest(model_name)}", f"{name} from {Path(model_name).name}")
        return model.to(device).eval(), info

    if model_name.startswith("local-dir:"):
        folder = Path(model_name[len("local-dir:"):]).expanduser()
        if not folder.is_dir():
            raise MissingWeightsError(f"open_clip local-dir '{folder}' does not exist (expected a folder with open_clip_config.json and weights)")
        model = open_clip.create_model(model_name, device=device)
        weights = sorted(p for p in folder.iterdir() if p.suffix in (".bin", ".safetensors", ".pt", ".pth"))
        digest = file_digest(weights[0]) if weights else "noweights"
        info = BackboneInfo(model_name, str(folder), f"{model_name}|{digest}", f"{folder.name} (local-dir)")
        return model.eval(), info

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model '{model_name}'; see open_clip.list_models()")

    if model_name == SMALL_CLIP_NAME and pretrained in (None, "shipped"):
        if not SHIPPED_SMALL_CLIP.is_file():
            raise MissingWeightsError(
                f"the shipped '{SMALL_CLIP_NAME}' checkpoint is missing (expected file {SHIPPED_SMALL_CLIP}); "
                "restore it from git or retrain it: `cliphaze clip train-small`"
            )
        model, _ = _load_compact(SHIPPED_SMALL_CLIP)
        info = BackboneInfo(
            SMALL_CLIP_NAME, "shipped", f"{SMALL_CLIP_NAME}|{file_digest(SHIPPED_SMALL_CLIP)}",
            f"{SMALL_CLIP_NAME} (trained here on synthetic haze; not OpenAI CLIP)",
        )
        return model.to(device).eval(), info

    if pretrained is None:
        raise ValueError(
            f"model '{model_name}' needs weights: pass pretrained=<tag or file>, or pretrained='random' "
            "for an untrained network"
        )
    if pretrained == "random":
        torch.manual_seed(seed)
        with _quiet_open_clip():
            model = open_clip.create_model(model_name, pretrained=None, device=device)
        info = BackboneInfo(model_name, "random", f"{model_name}|random-seed{seed}", f"{model_name} (random init, untrained)")
        return model.eval(), info

    if os.path.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise MissingWeightsError(
                f"CLIP weights for model '{model_name}' not found: expected file '{path}'. Check the path, "
                f"or use a pretrained tag ({open_clip.list_pretrained_tags_by_model(model_name)})."
            )
        compact, payload = _load_compact(path) if path.suffix == ".pt" else (None, None)
        if compact is not None:
            if payload["model_name"] != model_name:
                raise ValueError(f"{path} holds '{payload['model_name']}', not '{model_name}'")
            model = compact.to(device)
        else:
            model = open_clip.create_model(model_name, pretrained=str(path), device=device)
        info = BackboneInfo(model_name, str(path), f"{model_name}|{file_digest(path)}", f"{model_name} ({path.name})")
        return model.eval(), info

    cached = cached_pretrained_file(model_name, pretrained)
    if cached is None:
        filename, where = _expected_file(model_name, pretrained)
        raise MissingWeightsError(_how_to_supply(model_name, pretrained, filename, where))
    model = open_clip.create_model(model_name, pretrained=cached, device=device)
    info = BackboneInfo(model_name, pretrained, f"{model_name}|{pretrained}", f"{model_name} / {pretrained}")
    return model.eval(), info


def find_cached_clip(candidates=(("ViT-B-32", "openai"), ("ViT-B-32", "laion2b_s34b_b79k"), ("ViT-B-16", "openai"))):
    """First ``(model_name, tag)`` among ``candidates`` whose weights are cached here, else None.

    Lessons call this to use a real CLIP automatically when one is available.
    """
    for name, tag in candidates:
        try:
            if cached_pretrained_file(name, tag):
                return name, tag
        except ValueError:
            continue
    return None
