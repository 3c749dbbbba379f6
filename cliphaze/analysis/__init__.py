"""Analysis tools behind lesson 06's figures and tables.

- :mod:`cliphaze.analysis.erf` - effective receptive fields (gradient of a centre output with
  respect to the input) of any module, and of the two paths and the fused TrambaDA block;
- :mod:`cliphaze.analysis.cost` - time and peak memory against image size for the attention path,
  the Mamba path, full (global) attention and the fused block;
- :mod:`cliphaze.analysis.ablation` - the ablation runner (tiny models trained with
  :func:`cliphaze.train.train`, several seeds, mean and spread);
- :mod:`cliphaze.analysis.density_eval` - scores of haze-density maps against the true density,
  per haze family (leave one family out), with the dark channel prior as the control
  (``cliphaze clip evaluate``; lessons 01 and 02);
- :mod:`cliphaze.analysis.figures` - CLIP prompt-pair scores of hazy and clear images, and the
  learned aggregation weights ``W_m`` of a trained model against the haze density.

Lesson: ``notebooks/06_evaluation.ipynb``.
"""

from cliphaze.analysis.erf import ErfMaps, block_path_erfs, effective_receptive_field, erf_radius
from cliphaze.analysis.figures import (
    PromptScores,
    WeightCurve,
    aggregation_weights,
    binned_curve,
    prompt_pair_scores,
)

__all__ = [
    "ErfMaps",
    "block_path_erfs",
    "effective_receptive_field",
    "erf_radius",
    "PromptScores",
    "WeightCurve",
    "aggregation_weights",
    "binned_curve",
    "prompt_pair_scores",
]
