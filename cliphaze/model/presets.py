"""Named sizes of the CLIPHaze network, all in one place, and what each one costs.

A preset fixes the architecture hyper-parameters of :class:`cliphaze.model.CLIPHazeNet`
(channel widths per level, TrambaDA blocks per stage, heads, window, SS2D state). The paper gives
the structure (a three-level encoder-decoder of TrambaDA blocks) but not its sizes; ours are:

==========  =============  ==================  =========================================
preset      widths c       blocks per stage    meant for
==========  =============  ==================  =========================================
``tiny``    16, 24, 32     0, 1, 2, 1, 0       CPU lessons, CI, the shipped model
``small``   24, 48, 96     2, 2, 4, 2, 2       a GPU afternoon (or a patient CPU)
``paper``   48, 96, 192    4, 4, 8, 4, 4       paper-like scale (DehazeFormer-B / MambaIR
                                               sized), GPU only
==========  =============  ==================  =========================================

"Blocks per stage" lists encoder level 0, encoder level 1, the bottleneck (level 2), decoder
level 1, decoder level 0.

*Why ``tiny`` has no blocks at full resolution.* On a CPU the selective scan is a loop over the
``h w`` positions of a map, so one block at full resolution on 64x64 training crops costs more than
all the others together (measured: 3.6 s per training step of batch 16 with one block at level 0
in the encoder and decoder, 1.0 s without). ``tiny`` therefore works at full resolution with
convolutions only (stem, skip fusion, head) and puts its TrambaDA blocks at 1/2 and 1/4
resolution; ``small`` and ``paper`` have blocks at every level, as in the paper. :func:`describe_presets` prints parameters and FLOPs at 256x256 for each
(counted with :func:`cliphaze.block.count_flops`, scan FLOPs estimated as VMamba does; the frozen
CLIP guide is not included). Measured with it: ``tiny`` 76,732 parameters and 1.94 GFLOPs,
``small`` 1,206,712 and 39.1 GFLOPs, ``paper`` 8,909,988 and 232.3 GFLOPs. Lesson: ``notebooks/05_full_training.ipynb``, section "Presets".

*Aggregation, not guidance.* A config names the aggregation kind of its blocks (``"density"``,
``"semantic"``, ``"sum"``, ``"static"``, ``"attention"``, ``"mamba"``); what the CLIP guide must
compute follows from it (:attr:`NetworkConfig.needs`, owned by the aggregation classes). Older
configs said ``guidance="density" | "semantic" | "none"`` plus ``unguided_aggregation``;
:meth:`NetworkConfig.from_dict`, :meth:`NetworkConfig.with_` and :func:`get_preset` still read
them (``"none"`` means ``unguided_aggregation``, default ``"static"``), so old checkpoints load.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

__all__ = ["NetworkConfig", "PRESETS", "get_preset", "preset_cost", "describe_presets", "legacy_network_fields"]

_LEGACY_GUIDANCE = ("density", "semantic", "none")


def legacy_network_fields(d: dict) -> dict:
    """Translate the old ``guidance`` / ``unguided_aggregation`` fields into ``aggregation``.

    ``guidance="density"`` or ``"semantic"`` -> that aggregation; ``guidance="none"`` -> the
    ``unguided_aggregation`` (default ``"static"``). Other keys pass through unchanged.

    Raises:
        ValueError: an unknown ``guidance`` value, or an ``aggregation`` that contradicts it.
    """
    if "guidance" not in d and "unguided_aggregation" not in d:
        return d
    d = dict(d)
    guidance = d.pop("guidance", "none")
    unguided = d.pop("unguided_aggregation", "static")
    if guidance not in _LEGACY_GUIDANCE:
        raise ValueError(f"guidance must be one of {_LEGACY_GUIDANCE}, got {guidance!r}")
    kind = unguided if guidance == "none" else guidance
    if d.setdefault("aggregation", kind) != kind:
        raise ValueError(f"aggregation={d['aggregation']!r} contradicts guidance={guidance!r} "
                         f"(meaning {kind!r}); give aggregation only")
    return d


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a :class:`~cliphaze.model.CLIPHazeNet` (everything a checkpoint must rebuild it).

    Attributes:
        dims: channels ``c`` at levels 0 (full resolution), 1 (1/2) and 2 (1/4).
        depths: TrambaDA blocks in (encoder 0, encoder 1, bottleneck, decoder 1, decoder 0).
        heads: attention heads per level (each divides its ``dims`` entry).
        window_size: attention window ``ws`` at every level.
        d_state: SS2D state size ``n``.
        ssm_ratio: SS2D expansion ``d / c``.
        directions: SS2D scan directions ``k``.
        mlp_ratio: feed-forward hidden width / ``c``.
        ffn: ``"gdfn"`` or ``"mlp"`` (see :class:`cliphaze.block.TrambaDA`).
        aggregation: the aggregation kind of every block (:data:`cliphaze.block.AGGREGATION_KINDS`):
            ``"density"`` (non-homogeneous haze: the CLIP density map, density-aware
            aggregation), ``"semantic"`` (homogeneous haze: CLIP image tokens) or an unguided
            baseline for ablations (``"static"``, ``"sum"``, ``"attention"``, ``"mamba"``: no CLIP).
        clip_dim: width ``e`` of the CLIP tokens (needed by ``"semantic"``; filled in from the
            guide when the model is built with one).
        shift_alternate: shifted windows on every second block of a stage.
    """

    dims: tuple[int, int, int] = (16, 24, 32)
    depths: tuple[int, int, int, int, int] = (0, 1, 2, 1, 0)
    heads: tuple[int, int, int] = (1, 2, 2)
    window_size: int = 8
    d_state: int = 8
    ssm_ratio: float = 1.0
    directions: int = 4
    mlp_ratio: float = 2.0
    ffn: str = "gdfn"
    aggregation: str = "density"
    clip_dim: int | None = None
    shift_alternate: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if len(self.dims) != 3 or len(self.heads) != 3 or len(self.depths) != 5:
            raise ValueError(f"dims and heads need 3 entries and depths 5, got {self.dims}, {self.heads}, {self.depths}")
        for c, h in zip(self.dims, self.heads):
            if c < 1 or h < 1 or c % h:
                raise ValueError(f"each width must be divisible by its heads, got dims {self.dims}, heads {self.heads}")
        if any(d < 0 for d in self.depths):
            raise ValueError(f"depths must be >= 0, got {self.depths}")
        from cliphaze.block.aggregation import AGGREGATION_KINDS

        if self.aggregation not in AGGREGATION_KINDS:
            raise ValueError(f"aggregation must be one of {AGGREGATION_KINDS}, got {self.aggregation!r}")

    @property
    def needs(self) -> frozenset[str]:
        """What the blocks read from the CLIP guide (``{"density"}``, ``{"tokens"}`` or nothing),
        as declared by the aggregation class (:func:`cliphaze.block.aggregation_needs`)."""
        from cliphaze.block.aggregation import aggregation_needs

        return aggregation_needs(self.aggregation)

    @property
    def guided(self) -> bool:
        """Whether the network reads anything from a CLIP guide."""
        return bool(self.needs)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        """Inverse of :meth:`to_dict` (also reads the old ``guidance`` fields, see the module
        docstring); unknown keys raise ``ValueError`` naming them."""
        d = legacy_network_fields(d)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown network config keys: {unknown}")
        d = dict(d)
        for key in ("dims", "depths", "heads"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)

    def with_(self, **changes) -> NetworkConfig:
        """A copy with some fields changed (e.g. ``aggregation="sum"``; the old ``guidance`` fields
        are translated)."""
        return replace(self, **legacy_network_fields(changes))


PRESETS: dict[str, NetworkConfig] = {
    # Sized so that one training step (batch 16, 64x64 crops) takes about a second on one CPU core.
    "tiny": NetworkConfig(),
    # Between the two: tiny's full-resolution levels, wider and deeper low-resolution levels
    # (4.3x tiny's parameters for about 1.9x its training-step time: the 64-channel blocks run on
    # 1/16 of the pixels).
    "mid": NetworkConfig(dims=(16, 32, 64), depths=(0, 1, 4, 1, 0), heads=(1, 2, 4)),
    "small": NetworkConfig(dims=(24, 48, 96), depths=(2, 2, 4, 2, 2), heads=(1, 2, 4), d_state=16, ssm_ratio=2.0),
    "paper": NetworkConfig(dims=(48, 96, 192), depths=(4, 4, 8, 4, 4), heads=(2, 4, 8), d_state=16, ssm_ratio=2.0,
                           mlp_ratio=2.66),
}


def get_preset(name: str, **overrides) -> NetworkConfig:
    """The :class:`NetworkConfig` of a named preset, optionally with fields overridden.

    Args:
        name: ``"tiny"``, ``"mid"``, ``"small"`` or ``"paper"``.
        **overrides: fields to change (e.g. ``aggregation="sum"``).

    Returns:
        the config.

    Raises:
        KeyError: unknown preset (the message lists the known ones).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].with_(**overrides) if overrides else PRESETS[name]


def preset_cost(config: NetworkConfig | str, size: int = 256) -> dict:
    """Parameters and FLOPs of one forward pass of the network on a ``size x size`` image.

    The network runs without its CLIP guide; a constant density map and random tokens of width
    ``clip_dim`` (default 64) stand in for what its aggregation needs, which changes nothing in
    the count.

    Args:
        config: a :class:`NetworkConfig` or a preset name.
        size: image side in pixels.

    Returns:
        dict with ``params`` (int), ``gflops`` (matmul/conv counted + scan estimate, in 1e9),
        ``scan_gflops`` (the estimated part).
    """
    import torch

    from cliphaze.block import count_flops, count_parameters
    from cliphaze.block.guidance import Guidance
    from cliphaze.model.network import CLIPHazeNet

    cfg = get_preset(config) if isinstance(config, str) else config
    if cfg.clip_dim is None:
        cfg = cfg.with_(clip_dim=64)
    net = CLIPHazeNet(cfg).eval()
    x = torch.rand(1, 3, size, size)
    stand_in = Guidance(density=torch.full((1, 1, size, size), 0.5), tokens=torch.randn(1, 50, cfg.clip_dim))
    report = count_flops(net, x, **stand_in.only(cfg.needs))
    return {"params": count_parameters(net), "gflops": report.total / 1e9, "scan_gflops": report.scan / 1e9}


def describe_presets(size: int = 256, names: list[str] | None = None, file=None) -> dict[str, dict]:
    """Print a table of every preset's parameters and FLOPs at ``size x size``.

    Args:
        size: image side.
        names: presets to include (default all).
        file: where to print (default stdout).

    Returns:
        ``{name: preset_cost(name)}``.
    """
    rows = {}
    print(f"{'preset':<8} {'widths':<14} {'blocks':<16} {'params':>10} {'GFLOPs@' + str(size):>12}", file=file)
    for name in names or list(PRESETS):
        cfg = PRESETS[name]
        cost = preset_cost(cfg, size)
        rows[name] = cost
        print(f"{name:<8} {str(cfg.dims):<14} {str(cfg.depths):<16} {cost['params']:>10,} {cost['gflops']:>12.2f}",
              file=file)
    return rows
