"""Moved: the density-map scores now live in :mod:`cliphaze.analysis.density_eval`, next to the other
analyses. This module keeps the old import path working."""

from cliphaze.analysis.density_eval import (
    DensityScores,
    EvalSet,
    auroc,
    dcp_density,
    density_benchmark,
    evaluate_density_method,
    hazy_clear_accuracy,
    make_eval_set,
    score_density,
    spearman,
)

__all__ = [
    "spearman", "auroc", "DensityScores", "score_density", "make_eval_set", "EvalSet",
    "evaluate_density_method", "hazy_clear_accuracy", "dcp_density", "density_benchmark",
]
