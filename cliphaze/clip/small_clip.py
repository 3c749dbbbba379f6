"""``haze-clip-small``: a small CLIP trained from scratch here, on synthetic haze, so that every
lesson has a working CLIP offline.

This module gathers, under one name, the pieces that each live in a module with one job:

- :mod:`cliphaze.clip.small_config`: the open_clip configs and their registration;
- :mod:`cliphaze.clip.captions`: captions generated from the haze parameters;
- :mod:`cliphaze.clip.losses`: contrastive, patch-level, ranking and density-regression losses;
- :mod:`cliphaze.clip.crops`: training crops (clear, hazed, bright textureless);
- :mod:`cliphaze.clip.small_train`: the training recipes and the prompt calibration;
- :mod:`cliphaze.clip.compact`: the compact checkpoint format.

Lesson: ``notebooks/02_prompt_learning.ipynb``, section "Training the small haze CLIP".
"""

from __future__ import annotations

from cliphaze.clip.captions import (
    CLEAR_BELOW,
    CLEAR_TEMPLATES,
    EXTRA_PROMPT_TEXT,
    HAZE_ADJECTIVES,
    HAZE_NOUNS,
    HAZY_TEMPLATES,
    KIND_WORDS,
    LEVEL_DENSITIES,
    STRENGTH_EDGES,
    STRENGTH_WORDS,
    caption_vocabulary,
    density_level,
    make_caption,
    strength_of,
)
from cliphaze.clip.compact import (
    CHECKPOINT_FORMAT,
    file_digest,
    load_small_clip_state,
    save_small_clip,
)
from cliphaze.clip.crops import HazeCropSampler, HazePairSampler, bright_clear_crops, load_photos
from cliphaze.clip.losses import (
    contrastive_loss_unique,
    density_regression_loss,
    haze_score,
    ranking_loss,
    token_level_loss,
)
from cliphaze.clip.small_config import (
    SHIPPED_SMALL_CLIP,
    SMALL_CLIP_CONFIG,
    SMALL_CLIP_NAME,
    TINY_TEST_CLIP_CONFIG,
    TINY_TEST_CLIP_NAME,
    register_small_configs,
)
from cliphaze.clip.small_train import (
    RECIPES,
    TRAIN_FAMILIES,
    SmallClipTrainConfig,
    fit_density_prompts,
    train_small_clip,
)

__all__ = [
    "CHECKPOINT_FORMAT", "CLEAR_BELOW", "CLEAR_TEMPLATES", "EXTRA_PROMPT_TEXT", "HAZE_ADJECTIVES", "HAZE_NOUNS",
    "HAZY_TEMPLATES", "KIND_WORDS", "LEVEL_DENSITIES", "RECIPES", "SHIPPED_SMALL_CLIP", "SMALL_CLIP_CONFIG",
    "SMALL_CLIP_NAME", "STRENGTH_EDGES", "STRENGTH_WORDS", "TINY_TEST_CLIP_CONFIG", "TINY_TEST_CLIP_NAME",
    "TRAIN_FAMILIES", "HazeCropSampler", "HazePairSampler", "SmallClipTrainConfig", "bright_clear_crops",
    "caption_vocabulary", "contrastive_loss_unique", "density_level", "density_regression_loss",
    "file_digest", "fit_density_prompts", "haze_score", "load_photos", "load_small_clip_state",
    "make_caption", "ranking_loss", "register_small_configs", "save_small_clip", "strength_of",
    "token_level_loss", "train_small_clip",
]
