"""Training the CLIPHaze network: config, losses, the loop (stage 1 prompts, stage 2 network), CLI.

Names are imported on first use (PEP 562), so ``cliphaze train --help`` does not import torch.

Lesson: ``notebooks/05_full_training.ipynb``, section "Training".
"""

from __future__ import annotations

import importlib

_SOURCES = {
    "cliphaze.train.config": ("RESUME_MUST_MATCH", "TrainConfig", "load_config_file"),
    "cliphaze.train.losses": ("DehazeLoss", "frequency_loss", "l1_loss", "ssim_loss"),
    "cliphaze.train.loop": ("RUN_FILES", "EpochIndexed", "RunFolderInUse", "StepBatchSampler", "Trainer",
                            "TrainingDiverged", "TrainResult", "batch_indices", "build_datasets", "evaluate_pairs",
                            "haze_options", "lr_factor", "make_loader", "rank_share", "train",
                            "weight_decay_groups"),
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cliphaze.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
