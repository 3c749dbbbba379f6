"""DA-CLIP (Luo et al., "Controlling Vision-Language Models for Multi-Task Image Restoration",
ICLR 2024): a frozen CLIP plus an image *controller*, and its degradation-free content embedding.

CLIPHaze's semantic-aware aggregation uses DA-CLIP's image encoder (``docs/design.md``, sections 1 and 3). The
public checkpoint ``daclip_ViT-B-32.pt`` (about 1.7 GB, MIT) is open_clip ``ViT-B-32``
(laion2b_s34b_b79k) wrapped as::

    clip.*                       the frozen CLIP (all open_clip keys under "clip.")
    visual.*                     the same visual tower again (a module alias; optional here)
    visual_control.*             a copy of the visual tower, whose transformer is wrapped:
    visual_control.transformer.transformer.resblocks.{i}.*    the copied blocks
    visual_control.transformer.zero_modules.{i}.{weight,bias} zero-initialised Linear(width, width)
    logit_scale                  (a copy of clip.logit_scale)

Forward (the original code, reproduced by :meth:`DaCLIPModel.content_and_degradation`): the
controller runs its own copy of the tower on the image and emits, after every block ``i``,
``c_i = zero_module_i(x_i)``; its pooled, projected output is the *degradation* embedding. The
frozen tower then runs again with those outputs added to its hidden states: after block ``i``
it adds ``c_{L-1-i}`` (the original pops them from the end of the list, so the last controller
block feeds the first frozen block). Its pooled output is the *content* ("degradation-free")
embedding that DA-CLIP gives to downstream restoration networks. With all zero modules at zero
the content embedding equals plain CLIP's image embedding.

Lesson: ``notebooks/01_clip_zero_shot_density.ipynb``, "Which CLIP?". Shapes: b batch, t tokens,
e joint width, w_v visual width, L blocks.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.clip.backbone import BackboneInfo, MissingWeightsError
from cliphaze.clip.compact import file_digest
from cliphaze.clip.frozen import FrozenCLIP

__all__ = ["DaCLIPModel", "FrozenDaCLIP", "split_daclip_state_dict", "load_daclip", "DACLIP_FILENAME"]

DACLIP_FILENAME = "daclip_ViT-B-32.pt"


def split_daclip_state_dict(state: dict) -> tuple[dict, dict, dict]:
    """Split a DA-CLIP state dict into ``(clip_state, controller_state, zero_module_state)``.

    ``controller_state`` has plain open_clip visual keys (``conv1.weight``,
    ``transformer.resblocks.0...``); ``zero_module_state`` maps ``"{i}.weight"`` / ``"{i}.bias"``.

    Raises:
        ValueError: the keys do not have the DA-CLIP layout (the message lists what is missing).
    """
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    state = {k[7:] if k.startswith("module.") else k: v for k, v in state.items()}
    clip = {k[5:]: v for k, v in state.items() if k.startswith("clip.")}
    ctrl, zero = {}, {}
    for k, v in state.items():
        if not k.startswith("visual_control."):
            continue
        k = k[len("visual_control."):]
        if k.startswith("transformer.zero_modules."):
            zero[k[len("transformer.zero_modules."):]] = v
        elif k.startswith("transformer.transformer."):
            ctrl["transformer." + k[len("transformer.transformer."):]] = v
        else:
            ctrl[k] = v
    missing = [name for name, part in (("clip.*", clip), ("visual_control.*", ctrl), ("visual_control.transformer.zero_modules.*", zero)) if not part]
    if missing:
        raise ValueError(f"not a DA-CLIP checkpoint: no keys {missing} (found e.g. {list(state)[:3]})")
    return clip, ctrl, zero


class DaCLIPModel(nn.Module):
    """An open_clip CLIP with DA-CLIP's controller (module docstring for the forward).

    Args:
        clip_model: open_clip ``CLIP`` with a ``VisionTransformer`` image tower.
    """

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.clip = clip_model
        self.visual_control = copy.deepcopy(clip_model.visual)
        width = clip_model.visual.conv1.out_channels
        layers = len(clip_model.visual.transformer.resblocks)
        self.zero_modules = nn.ModuleList([nn.Linear(width, width) for _ in range(layers)])
        for m in self.zero_modules:
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @staticmethod
    def _embed(visual, x: torch.Tensor) -> torch.Tensor:
        z = visual.conv1(x).flatten(2).transpose(1, 2)
        cls = visual.class_embedding.view(1, 1, -1).expand(z.shape[0], 1, -1).to(z.dtype)
        z = torch.cat([cls, z], dim=1) + visual.positional_embedding.to(z.dtype)
        return visual.ln_pre(z)

    @staticmethod
    def _pool(visual, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, tokens = visual._pool(z)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled, tokens

    def content_and_degradation(self, x: torch.Tensor, return_tokens: bool = False):
        """Content and degradation embeddings of normalised images ``(b, 3, H, W)`` (model size).

        Returns:
            ``(content (b, e), degradation (b, e))`` un-normalised; with ``return_tokens`` also
            the content tower's final hidden states ``(b, 1 + t, w_v)`` (before ``ln_post``).
        """
        ctrl = self.visual_control
        z = self._embed(ctrl, x)
        hiddens = []
        for block, zero in zip(ctrl.transformer.resblocks, self.zero_modules):
            z = block(z)
            hiddens.append(zero(z))
        degradation, _ = self._pool(ctrl, z)
        v = self.clip.visual
        h = self._embed(v, x)
        for block in v.transformer.resblocks:
            h = block(h)
            h = h + hiddens.pop()
        content, _ = self._pool(v, h)
        return (content, degradation, h) if return_tokens else (content, degradation)


class FrozenDaCLIP(FrozenCLIP):
    """:class:`FrozenCLIP` whose image side is DA-CLIP's degradation-free content encoder.

    ``encode_image`` returns the content embedding, ``image_tokens`` the content tower's patch
    tokens projected like the class token (at the model's native grid only: the controller was
    trained at 224 x 224), and ``encode_degradation`` the controller's degradation embedding.
    """

    def __init__(self, daclip: DaCLIPModel, info: BackboneInfo, tokenizer=None):
        super().__init__(daclip.clip, info, tokenizer)
        self.daclip = daclip.eval()
        for p in self.daclip.parameters():
            p.requires_grad_(False)

    def encode_image(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        content, _ = self.daclip.content_and_degradation(self.normalise(x))
        return F.normalize(content, dim=-1) if normalize else content

    def encode_degradation(self, x: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        """``(b, e)`` DA-CLIP degradation embeddings (from the controller)."""
        _, degradation = self.daclip.content_and_degradation(self.normalise(x))
        return F.normalize(degradation, dim=-1) if normalize else degradation

    def image_tokens(self, x: torch.Tensor, short_side: int | None = None, normalize: bool = True, return_grid: bool = False):
        if short_side not in (None, min(self.image_size)):
            raise NotImplementedError("DA-CLIP tokens are available at the model's native input size only")
        _, _, h = self.daclip.content_and_degradation(self.normalise(x), return_tokens=True)
        v = self.model.visual
        tokens = v.ln_post(h[:, 1:])
        if v.proj is not None:
            tokens = tokens @ v.proj
        tokens = F.normalize(tokens, dim=-1) if normalize else tokens
        grid = tuple(v.grid_size)
        return (tokens, grid) if return_grid else tokens


def load_daclip(path: str | os.PathLike | None = None, model_name: str = "ViT-B-32", device="cpu") -> FrozenDaCLIP:
    """Load a DA-CLIP checkpoint (``daclip_ViT-B-32.pt`` by default) as a :class:`FrozenDaCLIP`.

    Args:
        path: checkpoint file; default ``$CLIPHAZE_DACLIP`` or ``~/.cache/cliphaze/daclip_ViT-B-32.pt``.
        model_name: the open_clip config it wraps (``ViT-B-32``; tests use ``tiny-test-clip``).
        device: where the model goes.

    Raises:
        MissingWeightsError: the file is not there (immediately, with where to get it).
    """
    import open_clip

    from cliphaze.clip.small_config import register_small_configs

    register_small_configs()
    if path is None:
        path = os.environ.get("CLIPHAZE_DACLIP", str(Path.home() / ".cache" / "cliphaze" / DACLIP_FILENAME))
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingWeightsError(
            f"DA-CLIP weights for model '{model_name}' not found: expected file '{path}'. Download "
            f"'{DACLIP_FILENAME}' (about 1.7 GB, MIT) from the DA-CLIP project (github.com/Algolzw/daclip-uir, "
            "Hugging Face weblzw/daclip-uir-ViT-B-32-irsde) and pass its path, or set $CLIPHAZE_DACLIP."
        )
    from cliphaze.serialization import safe_torch_load

    state = safe_torch_load(path, map_location="cpu", what="DA-CLIP weights file")
    clip_state, ctrl_state, zero_state = split_daclip_state_dict(state)
    model = open_clip.create_model(model_name, pretrained=None)
    model.load_state_dict(clip_state, strict=True)
    daclip = DaCLIPModel(model)
    daclip.visual_control.load_state_dict(ctrl_state, strict=True)
    daclip.zero_modules.load_state_dict(zero_state, strict=True)
    info = BackboneInfo(model_name, str(path), f"daclip:{model_name}|{file_digest(path)}", f"DA-CLIP {model_name} (content encoder, {path.name})")
    return FrozenDaCLIP(daclip.to(device), info)
