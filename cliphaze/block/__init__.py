"""The TrambaDA block: window attention (local), SS2D (global) and CLIP-guided aggregation.

Lesson: ``notebooks/04_trambada_block.ipynb``.

- :class:`WindowAttention` - Swin-style (shifted) window self-attention for any h, w;
- :class:`Guidance` - what the CLIP guide hands the blocks, and :func:`check_density`;
- :func:`make_aggregation` and the aggregation modules (density-aware, semantic-aware and the
  ablation baselines sum / static / attention-only / Mamba-only);
- :class:`TrambaDA` - the block;
- :func:`count_parameters`, :func:`count_flops` - what a block costs.
"""

from cliphaze.block.aggregation import (
    AGGREGATION_KINDS,
    AGGREGATIONS,
    Aggregation,
    DensityAwareAggregation,
    FixedSumAggregation,
    SemanticAwareAggregation,
    SinglePathAggregation,
    StaticAggregation,
    aggregation_needs,
    make_aggregation,
    pair_softmax,
    resize_density,
)
from cliphaze.block.cost import (
    FlopReport,
    count_flops,
    count_parameters,
    parameter_breakdown,
    scan_flops,
)
from cliphaze.block.guidance import GUIDANCE_INPUTS, Guidance, check_density
from cliphaze.block.trambada import FFN_KINDS, MLP, GatedDepthwiseFFN, TrambaDA
from cliphaze.block.window_attention import (
    WindowAttention,
    relative_position_index,
    shifted_region_labels,
    window_attention_mask,
    window_merge,
    window_partition,
)

__all__ = [
    "AGGREGATION_KINDS",
    "AGGREGATIONS",
    "Aggregation",
    "DensityAwareAggregation",
    "FixedSumAggregation",
    "SemanticAwareAggregation",
    "SinglePathAggregation",
    "StaticAggregation",
    "aggregation_needs",
    "make_aggregation",
    "pair_softmax",
    "resize_density",
    "GUIDANCE_INPUTS",
    "Guidance",
    "check_density",
    "FlopReport",
    "count_flops",
    "count_parameters",
    "parameter_breakdown",
    "scan_flops",
    "FFN_KINDS",
    "MLP",
    "GatedDepthwiseFFN",
    "TrambaDA",
    "WindowAttention",
    "relative_position_index",
    "shifted_region_labels",
    "window_attention_mask",
    "window_merge",
    "window_partition",
]
