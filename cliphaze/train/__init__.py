"""Training the CLIPHaze network: config, losses, the loop (stage 1 prompts, stage 2 network), CLI.

Lesson: ``notebooks/05_full_training.ipynb``, section "Training".
"""

from cliphaze.train.config import RESUME_MUST_MATCH, TrainConfig, load_config_file
from cliphaze.train.loop import (
    TrainingDiverged,
    TrainResult,
    batch_indices,
    build_datasets,
    evaluate_pairs,
    lr_factor,
    train,
)
from cliphaze.train.losses import DehazeLoss, frequency_loss, l1_loss, ssim_loss

__all__ = [
    "RESUME_MUST_MATCH", "TrainConfig", "load_config_file",
    "DehazeLoss", "frequency_loss", "l1_loss", "ssim_loss",
    "TrainingDiverged", "TrainResult", "batch_indices", "build_datasets", "evaluate_pairs", "lr_factor", "train",
]
