"""The package's defaults, each in one place (imports nothing, so command-line help stays fast).

- :data:`SHIPPED_MODEL` / :data:`SHIPPED_MODEL_FILE`: the dehazing model in ``cliphaze/assets``
  that ``cliphaze dehaze`` and :func:`cliphaze.load_model` use when none is named;
- :data:`SHIPPED_GUIDE`: the CLIP guide it was trained with, and the default guide of
  ``cliphaze train`` (:mod:`cliphaze.model.guide`);
- :data:`GUIDE_SIDE`: the guide sees each image shrunk to at most this long side
  (:class:`cliphaze.model.CLIPHaze`);
- :data:`TILE_OVERLAP`, :data:`MAX_PIXELS`: tiled inference of large images
  (:meth:`cliphaze.model.CLIPHaze.dehaze_tensor`).

Architecture defaults live with their modules: the SS2D state size and expansion in
:class:`cliphaze.ssm.SS2D`, the network sizes in :data:`cliphaze.model.PRESETS`.
"""

SHIPPED_MODEL = "cliphaze-tiny"
SHIPPED_MODEL_FILE = "cliphaze_tiny.pt"
SHIPPED_GUIDE = "haze-clip-small"
GUIDE_SIDE = 256
TILE_OVERLAP = 32
MAX_PIXELS = 1024 * 1024
