"""The full CLIPHaze model: network, presets, checkpoints and inference on images of any size.

- :mod:`cliphaze.model.presets` - :class:`NetworkConfig`, the named sizes, their cost;
- :mod:`cliphaze.model.network` - :class:`CLIPHazeNet`, the encoder-decoder of TrambaDA blocks;
- :mod:`cliphaze.model.guide` - the frozen CLIP guide and its fingerprint;
- :mod:`cliphaze.model.inference` - :class:`CLIPHaze` (guide + network, tiled ``.dehaze()``),
  :func:`build_model`, :func:`load_model`;
- :mod:`cliphaze.model.checkpoint` - atomic :func:`save_checkpoint`, checked :func:`load_checkpoint`;
- :mod:`cliphaze.model.cli` - ``cliphaze dehaze``.

Lesson: ``notebooks/05_full_training.ipynb``.
"""

from cliphaze.model.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from cliphaze.model.guide import (
    SHIPPED_GUIDE,
    TEST_GUIDE,
    GuideMismatchWarning,
    build_guide,
    check_guide,
    guide_fingerprint,
)
from cliphaze.model.inference import (
    SHIPPED_MODELS,
    CLIPHaze,
    blend_weights,
    build_model,
    default_model_path,
    load_model,
    tile_ends,
    tile_starts,
)
from cliphaze.model.network import (
    CLIPHazeNet,
    density_pyramid,
    pad_to_multiple,
    soft_reconstruction,
)
from cliphaze.model.presets import (
    PRESETS,
    NetworkConfig,
    describe_presets,
    get_preset,
    legacy_network_fields,
    preset_cost,
)

__all__ = [
    "CHECKPOINT_FORMAT", "CheckpointError", "load_checkpoint", "save_checkpoint",
    "SHIPPED_GUIDE", "TEST_GUIDE", "GuideMismatchWarning", "build_guide", "check_guide", "guide_fingerprint",
    "SHIPPED_MODELS", "CLIPHaze", "blend_weights", "build_model", "default_model_path", "load_model", "tile_ends", "tile_starts",
    "CLIPHazeNet", "density_pyramid", "pad_to_multiple", "soft_reconstruction",
    "PRESETS", "NetworkConfig", "describe_presets", "get_preset", "legacy_network_fields", "preset_cost",
]
