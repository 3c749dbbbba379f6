"""A controlled task where the density-guided fusion of TrambaDA has to matter, if the paper is right.

*The hypothesis under test* (CLIPHaze, sec. 3.4): dense haze (transmission ``t`` near 0) destroys
the local information, so the content there can only be recovered from far away, which the
global Mamba path (SS2D) can reach and the local window attention cannot; thin haze needs fine
local processing; so weights ``W_m`` that grow with the haze density should beat attention only,
Mamba only and a static fusion. This module builds a task on which that story is forced to be
either visible or false, and the runner that measures it.

*The scene* (``content="stripes"``, the default). Every image is ``h`` rows of horizontal bands
(``band_height`` rows each); band ``k`` has one random colour ``c_k`` (RGB, each channel uniform
in ``colour_range``) along the whole width, plus fine detail::

    base(y, x)  = c_{band(y)}                                   (b, 3, h, w)  constant along a row
    detail      = s * blur_sigma(N(0, 1)) / std(...)             (b, 3, h, w)  per-pixel texture
    J           = clip(base + detail, 0, 1)                      the clear image

*The haze.* One vertical "fog bank" per image: columns ``[x0, x0 + p)`` (``p`` uniform in
``patch_width``, all ``h`` rows by default, ``patch_height`` to change) with one transmission
``t_d`` uniform in ``t_dense`` (default 0.02-0.05; ``(0, 0)`` gives ``t = 0`` exactly); elsewhere a
smooth field ``t_s(y, x)`` in ``t_thin`` (default 0.7-0.9: bilinear up-sampling of a 3x5 random
grid, rescaled to the range)::

    t           = t_d  on the bank,   t_s  elsewhere                 (b, 1, h, w)
    I           = J t + A (1 - t) + n,    n ~ N(0, noise_std^2)      A = airlight (fixed, grey)
    density     = 1 - t                                              (b, 1, h, w)  given to the net

With ``t_d = 0.035`` and ``noise_std = 0.02`` a colour difference of 0.3 in ``J`` changes the dense
pixel by 0.01, half the noise: locally the band colour is (nearly) gone. Its copy is not: every
pixel of the same band outside the bank has the same ``base``. For each dense pixel the
generator records the nearest such pixel (Chebyshev distance, the metric of square windows):
``copy_yx`` (``(b, 2, h, w)`` row and column (ties: the L1-nearest), ``-1`` where none exists) and ``copy_distance``
(``(b, 1, h, w)``, 0 on thin pixels, ``inf`` where no copy exists). With the bank spanning all
rows the copy is in the same row, at the bank's nearer edge. The fine detail under the bank is
lost for good (an error floor shared by every variant).

*The falsifying variant* (``content="local"``): the bands under the bank get fresh colours that
appear nowhere else, so no copy exists (``copy_distance = inf`` on every dense pixel). There the
global path has nothing to fetch and the hypothesis predicts no gain.

*Why far means far.* A stack of ``depth`` TrambaDA blocks with window ``ws`` behind a 3x3 stem and
a 3x3 head, attention only, computes each output pixel from inputs within a Chebyshev radius of
:func:`local_reach` (at most ``2 + depth * ws``: stem 1, per block ``ws - 1`` for the window and 1
for the feed-forward's depthwise 3x3, head 1; 8 for the default two blocks of window 4 with the
second one shifted, computed exactly by following the window borders). A dense pixel whose ``copy_distance`` exceeds it
("far dense") cannot be recovered by the attention-only network, whatever it learns; the Mamba
path's scans run over whole rows and columns and can.

*The control.* Every variant receives the true density as a fourth input channel of its stem, so
knowing *where* the haze is is not what the density-guided variant adds: it adds only the
*routing* of each pixel between the two paths by ``W_m = sigmoid(alpha M + beta)``. Variants
(the same :class:`LabNet`, same data, same steps, same seeds): ``attention`` (``W_a = 1``),
``mamba`` (``W_m = 1``), ``static`` (learned per-channel weights, the same at every pixel),
``density`` (density-aware aggregation, the true ``1 - t``). Optional: ``sum`` (fixed 0.5 / 0.5).

*Scores.* PSNR from the mean squared error pooled over every pixel of a region over the whole
evaluation set: ``dense`` (the bank), ``far`` (dense pixels with ``copy_distance > local_reach``),
``thin`` (the rest) and ``all``.

*The aggregation learning rate.* The density module's last projection starts at zero
(:mod:`cliphaze.block.aggregation`), so ``W_m = 0.5`` at the start and Adam moves each logit by at
most about ``lr`` per step: in a short run ``W_m`` cannot go far whatever the gradient says.
:func:`diagnose_aggregation` measures the gradient reaching the aggregation parameters and how far
``W_m`` moves for several ``aggregation_lr_scale`` values (a multiplier on the learning rate of
the aggregation parameters only, :func:`make_optimizer`); :func:`choose_lr_scale` picks one by
that diagnostic, before any variant is compared.

Lesson: ``notebooks/07_mechanism_lab.ipynb``.

Shapes: b batch, c channels, h, w image size.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from cliphaze.block import TrambaDA
from cliphaze.model.network import soft_reconstruction

__all__ = [
    "CONTENTS",
    "VARIANTS",
    "METRICS",
    "TaskConfig",
    "MechanismTask",
    "make_task",
    "copy_geometry",
    "far_fraction",
    "local_reach",
    "LabConfig",
    "LabNet",
    "build_net",
    "make_optimizer",
    "aggregation_parameters",
    "train_variant",
    "region_psnr",
    "evaluate_net",
    "mean_w_m",
    "diagnose_aggregation",
    "choose_lr_scale",
    "LabResult",
    "run_lab",
    "weight_density_pairs",
]

CONTENTS = ("stripes", "local")
VARIANTS = ("attention", "mamba", "static", "density")
METRICS = ("dense", "far", "thin", "all")


# ----------------------------------------------------------------------------------------- task
@dataclass(frozen=True)
class TaskConfig:
    """The task's geometry and haze (see the module docstring for the equations).

    Attributes:
        height, width: image size ``h, w``.
        band_height: rows per colour band.
        patch_width: (min, max) width ``p`` of the dense bank in columns (inclusive).
        patch_height: (min, max) rows of the bank; None = all ``h`` rows.
        t_dense: (min, max) transmission in the bank (one value per image).
        t_thin: (min, max) transmission elsewhere (a smooth field).
        airlight: the airlight ``A`` (grey, the same for every image).
        noise_std: standard deviation of the sensor noise added to ``I``.
        detail: standard deviation ``s`` of the fine texture.
        detail_blur: Gaussian sigma (pixels) of the texture's smoothing.
        colour_range: (min, max) of each band colour channel.
        content: ``"stripes"`` (copies far away) or ``"local"`` (no copy: the falsifying task).
    """

    height: int = 16
    width: int = 48
    band_height: int = 4
    patch_width: tuple[int, int] = (20, 36)
    patch_height: tuple[int, int] | None = None
    t_dense: tuple[float, float] = (0.02, 0.05)
    t_thin: tuple[float, float] = (0.7, 0.9)
    airlight: float = 0.9
    noise_std: float = 0.02
    detail: float = 0.05
    detail_blur: float = 0.7
    colour_range: tuple[float, float] = (0.05, 0.75)
    content: str = "stripes"

    def __post_init__(self):
        if self.content not in CONTENTS:
            raise ValueError(f"content must be one of {CONTENTS}, got {self.content!r}")
        lo, hi = self.patch_width
        if not 1 <= lo <= hi <= self.width - 2:
            raise ValueError(f"patch_width {self.patch_width} must lie in [1, width - 2 = {self.width - 2}]")
        if self.patch_height is not None and not 1 <= self.patch_height[0] <= self.patch_height[1] <= self.height:
            raise ValueError(f"patch_height {self.patch_height} must lie in [1, height = {self.height}]")
        for name in ("t_dense", "t_thin"):
            a, b = getattr(self, name)
            if not 0.0 <= a <= b <= 1.0:
                raise ValueError(f"{name} must be 0 <= min <= max <= 1, got {(a, b)}")


@dataclass
class MechanismTask:
    """A batch of task images with everything the generator knows.

    Attributes:
        clear: ``(b, 3, h, w)`` ``J``.
        hazy: ``(b, 3, h, w)`` ``I`` (clipped to [0, 1]).
        transmission: ``(b, 1, h, w)`` ``t``.
        density: ``(b, 1, h, w)`` ``1 - t``.
        dense: ``(b, 1, h, w)`` bool, the bank.
        base: ``(b, 3, h, w)`` band colours (the recoverable part of ``J``).
        band: ``(b, h, w)`` long, the content label of each pixel (equal label = equal ``base``).
        copy_yx: ``(b, 2, h, w)`` long, nearest non-dense pixel with the same label (row, column)
            for dense pixels, ``-1`` elsewhere or where none exists (None if not computed).
        copy_distance: ``(b, 1, h, w)`` float, Chebyshev distance to that pixel (0 on thin
            pixels, ``inf`` where none exists; None if not computed).
        config: the :class:`TaskConfig`.
        seed: the generator seed.
    """

    clear: torch.Tensor
    hazy: torch.Tensor
    transmission: torch.Tensor
    density: torch.Tensor
    dense: torch.Tensor
    base: torch.Tensor
    band: torch.Tensor
    copy_yx: torch.Tensor | None
    copy_distance: torch.Tensor | None
    config: TaskConfig
    seed: int

    def __len__(self) -> int:
        return self.clear.shape[0]


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def copy_geometry(dense: torch.Tensor, band: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest non-dense pixel with the same content label, for every dense pixel (brute force).

    Args:
        dense: ``(b, 1, h, w)`` bool.
        band: ``(b, h, w)`` long content labels.

    Returns:
        ``(copy_yx (b, 2, h, w) long, copy_distance (b, 1, h, w) float)`` as in
        :class:`MechanismTask` (ties: the nearest in L1 distance, so a copy in the same row wins).
    """
    b, _, h, w = dense.shape
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()], 1)  # (hw, 2)
    copy_yx = torch.full((b, 2, h, w), -1, dtype=torch.long)
    dist = torch.zeros(b, 1, h, w)
    for i in range(b):
        d = dense[i, 0].flatten()
        lab = band[i].flatten()
        q, s = coords[d], coords[~d]  # dense queries, uncovered sources
        if len(q) == 0:
            continue
        diff = (q[:, None, :] - s[None, :, :]).abs()
        cheb = diff.amax(-1).float()  # (nq, ns)
        key = cheb * (h + w + 1) + diff.sum(-1).float()  # Chebyshev first, ties to the L1-nearest
        same = lab[d][:, None] == lab[~d][None, :]
        key = torch.where(same, key, torch.full_like(key, float("inf")))
        if key.shape[1] == 0:
            best_d, best = torch.full((len(q),), float("inf")), torch.zeros(len(q), dtype=torch.long)
        else:
            best = key.argmin(1)
            best_d = torch.where(torch.isfinite(key.min(1).values), cheb.gather(1, best[:, None])[:, 0],
                                 torch.tensor(float("inf")))
        found = torch.isfinite(best_d)
        yx = torch.where(found[:, None], s[best] if len(s) else torch.zeros_like(q), torch.full_like(q, -1))
        copy_yx[i, 0, q[:, 0], q[:, 1]] = yx[:, 0]
        copy_yx[i, 1, q[:, 0], q[:, 1]] = yx[:, 1]
        dist[i, 0, q[:, 0], q[:, 1]] = best_d
    return copy_yx, dist


def make_task(n: int, config: TaskConfig | None = None, seed: int = 0, with_copies: bool = True,
              **overrides) -> MechanismTask:
    """``n`` task images, fully determined by ``(config, seed)``.

    Args:
        n: number of images ``b``.
        config: a :class:`TaskConfig` (default ``TaskConfig()``); ``overrides`` change its fields.
        seed: seed of a private ``torch.Generator`` (the global RNG is not touched).
        with_copies: compute ``copy_yx`` / ``copy_distance`` (a brute-force search; training
            batches skip it).

    Returns:
        a :class:`MechanismTask`.
    """
    cfg = replace(config or TaskConfig(), **overrides) if overrides else (config or TaskConfig())
    g = torch.Generator().manual_seed(int(seed))
    h, w = cfg.height, cfg.width

    def uniform(shape, lo, hi):
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    n_bands = math.ceil(h / cfg.band_height)
    band_of_row = torch.arange(h) // cfg.band_height  # (h,)
    colours = uniform((n, n_bands, 3), *cfg.colour_range)
    band = band_of_row.view(1, h, 1).expand(n, h, w).clone()
    base = colours[torch.arange(n)[:, None, None], band].permute(0, 3, 1, 2).contiguous()  # (b, 3, h, w)

    # the dense bank
    dense = torch.zeros(n, 1, h, w, dtype=torch.bool)
    pw = torch.randint(cfg.patch_width[0], cfg.patch_width[1] + 1, (n,), generator=g)
    ph_lo, ph_hi = cfg.patch_height or (h, h)
    ph = torch.randint(ph_lo, ph_hi + 1, (n,), generator=g)
    fresh = uniform((n, n_bands, 3), *cfg.colour_range)  # colours of the local variant's bank
    for i in range(n):
        x0 = int(torch.randint(1, w - int(pw[i]), (1,), generator=g))  # >= 1 uncovered column each side
        y0 = int(torch.randint(0, h - int(ph[i]) + 1, (1,), generator=g))
        dense[i, 0, y0:y0 + int(ph[i]), x0:x0 + int(pw[i])] = True
        if cfg.content == "local":
            m = dense[i, 0]
            band[i][m] = band[i][m] + n_bands  # new labels: this content exists only under the bank
            base[i][:, m] = fresh[i, band_of_row.view(h, 1).expand(h, w)[m]].T

    detail = _gaussian_blur(torch.randn(n, 3, h, w, generator=g), cfg.detail_blur)
    detail = cfg.detail * detail / detail.flatten(1).std(1).clamp_min(1e-8).view(n, 1, 1, 1)
    clear = (base + detail).clamp(0, 1)

    grid = torch.rand(n, 1, 3, 5, generator=g)
    smooth = F.interpolate(grid, size=(h, w), mode="bilinear", align_corners=True)
    lo, hi = smooth.amin((2, 3), keepdim=True), smooth.amax((2, 3), keepdim=True)
    smooth = cfg.t_thin[0] + (cfg.t_thin[1] - cfg.t_thin[0]) * (smooth - lo) / (hi - lo).clamp_min(1e-8)
    t_d = uniform((n, 1, 1, 1), *cfg.t_dense)
    t = torch.where(dense, t_d.expand(n, 1, h, w), smooth)
    noise = cfg.noise_std * torch.randn(n, 3, h, w, generator=g)
    hazy = (clear * t + cfg.airlight * (1 - t) + noise).clamp(0, 1)
    copy_yx = copy_distance = None
    if with_copies:
        copy_yx, copy_distance = copy_geometry(dense, band)
    return MechanismTask(clear, hazy, t, 1 - t, dense, base, band, copy_yx, copy_distance, cfg, int(seed))


def local_reach(depth: int, window_size: int, shift_alternate: bool = True, stem: int = 1, head: int = 1,
                ffn: int = 1) -> int:
    """Exact Chebyshev radius of the inputs an attention-only :class:`LabNet` output pixel can depend on.

    The dependency set of an output pixel is a rectangle, the product of one interval per axis,
    so one axis suffices. Walk back from the output: the 3x3 head widens the interval by ``head``;
    in each block (last first) the feed-forward's depthwise 3x3 widens it by ``ffn`` and the
    attention widens it to the borders of the windows it touches (window borders at
    ``s + k ws``, ``s = ws // 2`` on the shifted blocks ``1, 3, ...`` when ``shift_alternate``,
    ``0`` otherwise); the 3x3 stem adds ``stem``. The radius is the largest distance from the
    output pixel to an end of its interval, over every position within one period of the window
    grid (far from the image borders). Without shifts this is ``stem + depth * ws + head``; the
    alternating shift makes the second window add less, because its borders sit half a window from
    the first one's (depth 2, ``ws`` 4: 8, not 10).
    """
    if depth < 0 or window_size < 1:
        raise ValueError(f"depth must be >= 0 and window_size >= 1, got {depth}, {window_size}")
    ws = window_size
    period = 2 * ws
    origin = period * (depth + 2)  # far from 0, so that no border is in reach
    best = 0
    for x in range(origin, origin + period):
        lo, hi = x - head, x + head
        for i in reversed(range(depth)):
            lo, hi = lo - ffn, hi + ffn
            s = ws // 2 if shift_alternate and i % 2 == 1 else 0
            lo = (lo - s) // ws * ws + s
            hi = (hi - s) // ws * ws + s + ws - 1
        lo, hi = lo - stem, hi + stem
        best = max(best, x - lo, hi - x)
    return best


def far_fraction(task: MechanismTask, distance: float) -> float:
    """Fraction of the dense pixels whose nearest copy is farther than ``distance`` (or absent).

    With ``distance = window_size - 1`` this is the fraction whose copy no attention window of
    one block can hold together with them; with :func:`local_reach` it is the fraction the
    attention-only network cannot reach.
    """
    if task.copy_distance is None:
        raise ValueError("the task was made with with_copies=False")
    d = task.copy_distance[task.dense]
    return float((d > distance).float().mean()) if d.numel() else 0.0


# -------------------------------------------------------------------------------------- network
@dataclass(frozen=True)
class LabConfig:
    """Network and training of one lab run.

    Attributes:
        channels: width ``c`` of every block.
        depth: TrambaDA blocks (at full resolution: no down-sampling, so the window is the reach).
        window_size: attention window ``ws``.
        heads: attention heads.
        d_state: SS2D state size.
        ssm_ratio: SS2D expansion.
        density_input: the stem reads the density as a fourth channel (the control: every variant
            knows where the haze is).
        steps, batch_size, lr: Adam training (L1 loss), a fresh batch of task images per step.
        aggregation_lr_scale: learning-rate multiplier of the aggregation parameters.
        n_eval: evaluation images (one fixed set, seed ``eval_seed``).
        eval_seed: seed of the evaluation set (training batches use ``1000 * seed + step + 1``).
        task: the :class:`TaskConfig`.
    """

    channels: int = 16
    depth: int = 2
    window_size: int = 4
    heads: int = 1
    d_state: int = 8
    ssm_ratio: float = 1.0
    density_input: bool = True
    steps: int = 200
    batch_size: int = 8
    lr: float = 2e-3
    aggregation_lr_scale: float = 1.0
    n_eval: int = 32
    eval_seed: int = 987_654
    task: TaskConfig = field(default_factory=TaskConfig)

    @property
    def reach(self) -> int:
        """:func:`local_reach` of this network."""
        return local_reach(self.depth, self.window_size)

    def to_dict(self) -> dict:
        return asdict(self)


class LabNet(nn.Module):
    """Stem (3x3, hazy + density -> c), ``depth`` TrambaDA blocks at full resolution, head (3x3 -> 4),
    soft reconstruction ``J = K * I - B + I`` with a zero head (the untrained net returns ``I``),
    as :class:`cliphaze.model.CLIPHazeNet` does.

    Forward: ``hazy (b, 3, h, w)``, ``density (b, 1, h, w)`` -> ``(b, 3, h, w)``.
    """

    def __init__(self, aggregation: str, config: LabConfig | None = None):
        super().__init__()
        cfg = config or LabConfig()
        self.config, self.aggregation = cfg, aggregation
        c = cfg.channels
        self.stem = nn.Conv2d(3 + int(cfg.density_input), c, 3, padding=1, padding_mode="reflect")
        self.blocks = nn.ModuleList(
            TrambaDA(c, num_heads=cfg.heads, window_size=cfg.window_size, shift=i % 2 == 1,
                     aggregation=aggregation, d_state=cfg.d_state, ssm_ratio=cfg.ssm_ratio,
                     on_missing="raise")
            for i in range(cfg.depth)
        )
        self.head = nn.Conv2d(c, 4, 3, padding=1, padding_mode="reflect")
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, hazy: torch.Tensor, density: torch.Tensor) -> torch.Tensor:
        x = torch.cat([hazy, density], 1) if self.config.density_input else hazy
        x = self.stem(x)
        for block in self.blocks:
            x = block(x, density=density)
        return soft_reconstruction(self.head(x), hazy)


def build_net(variant: str, config: LabConfig | None = None, seed: int = 0) -> LabNet:
    """The lab network of one variant (``"attention"``, ``"mamba"``, ``"static"``, ``"density"``,
    ``"sum"``), initialised from ``torch.manual_seed(seed)``."""
    torch.manual_seed(int(seed))
    return LabNet(variant, config)


def aggregation_parameters(net: nn.Module) -> list[nn.Parameter]:
    """The parameters of every block's aggregation module (empty for attention / Mamba only)."""
    return [p for name, p in net.named_parameters() if ".aggregation." in name]


def make_optimizer(net: nn.Module, lr: float, aggregation_lr_scale: float = 1.0) -> torch.optim.Adam:
    """Adam with two parameter groups: ``"rest"`` at ``lr`` and ``"aggregation"`` at
    ``lr * aggregation_lr_scale`` (the second is left out when the net has none)."""
    agg = {id(p) for p in aggregation_parameters(net)}
    rest = [p for p in net.parameters() if id(p) not in agg]
    groups = [{"params": rest, "lr": lr, "name": "rest"}]
    if agg:
        groups.append({"params": aggregation_parameters(net), "lr": lr * aggregation_lr_scale, "name": "aggregation"})
    return torch.optim.Adam(groups)


def mean_w_m(net: LabNet, task: MechanismTask) -> dict[str, float]:
    """``W_m`` of the net on a task, averaged over blocks and channels: on dense and thin pixels,
    their gap, and the mean movement ``|W_m - 0.5|`` over every pixel and channel."""
    was = net.training
    net.eval()
    with torch.no_grad():
        net(task.hazy, task.density)
    net.train(was)
    w = torch.stack([blk.last_weights[1].expand(len(task), -1, task.clear.shape[2], task.clear.shape[3])
                     for blk in net.blocks])  # (depth, b, c, h, w)
    pix = w.mean((0, 2))  # (b, h, w)
    dense = task.dense[:, 0]
    wd, wt = float(pix[dense].mean()), float(pix[~dense].mean())
    return {"dense": wd, "thin": wt, "gap": wd - wt, "movement": float((w - 0.5).abs().mean())}


def train_variant(variant: str, config: LabConfig, seed: int, diagnose: bool = False,
                  probe: MechanismTask | None = None) -> tuple[LabNet, dict]:
    """Train one variant on fresh task batches (the same batches for every variant of a seed).

    Args:
        variant: see :func:`build_net`.
        config: the :class:`LabConfig`.
        seed: initialisation and data seed.
        diagnose: record the gradient norm reaching the aggregation parameters at every step.
        probe: a task on which :func:`mean_w_m` is recorded at the end (with ``diagnose``).

    Returns:
        ``(net, log)`` with ``log`` holding ``loss`` (per step), ``seconds`` and, with
        ``diagnose``, ``agg_grad`` (per step) and ``w_m`` (the probe read-out).
    """
    net = build_net(variant, config, seed)
    opt = make_optimizer(net, config.lr, config.aggregation_lr_scale)
    agg = aggregation_parameters(net)
    log: dict = {"loss": [], "agg_grad": []}
    start = time.perf_counter()
    net.train()
    for step in range(config.steps):
        batch = make_task(config.batch_size, config.task, seed=1000 * int(seed) + step + 1, with_copies=False)
        loss = F.l1_loss(net(batch.hazy, batch.density), batch.clear)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if diagnose and agg:
            log["agg_grad"].append(float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in agg
                                                        if p.grad is not None))))
        opt.step()
        log["loss"].append(float(loss.detach()))
    log["seconds"] = time.perf_counter() - start
    if diagnose and probe is not None and agg:
        log["w_m"] = mean_w_m(net, probe)
    return net, log


# ----------------------------------------------------------------------------------- evaluation
def region_psnr(pred: torch.Tensor, task: MechanismTask, reach: int) -> dict[str, float]:
    """PSNR (dB, from the MSE pooled over the region and all images) on ``dense``, ``far``
    (dense with ``copy_distance > reach``), ``thin`` and ``all`` pixels. ``pred`` is clamped to
    [0, 1]. A region with no pixel gives NaN."""
    if task.copy_distance is None:
        raise ValueError("evaluation needs a task made with with_copies=True")
    err = ((pred.clamp(0, 1).double() - task.clear.double()) ** 2).mean(1, keepdim=True)  # (b, 1, h, w)
    regions = {
        "dense": task.dense,
        "far": task.dense & (task.copy_distance > reach),
        "thin": ~task.dense,
        "all": torch.ones_like(task.dense),
    }
    out = {}
    for name, m in regions.items():
        out[name] = float(10 * torch.log10(1.0 / err[m].mean())) if m.any() else float("nan")
    return out


def evaluate_net(net: LabNet, task: MechanismTask, reach: int, batch: int = 16) -> tuple[dict[str, float], torch.Tensor]:
    """``(region_psnr, prediction (b, 3, h, w))`` of a net on an evaluation task."""
    was = net.training
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(task.hazy[i:i + batch], task.density[i:i + batch]) for i in range(0, len(task), batch)])
    net.train(was)
    return region_psnr(pred, task, reach), pred


def weight_density_pairs(net: LabNet, task: MechanismTask) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per block, ``(density (n,), W_m channel mean (n,))`` over every pixel of the task, for
    :func:`cliphaze.analysis.figures.binned_curve`."""
    mean_w_m(net, task)  # one forward pass fills every block's last_weights
    pairs = []
    for blk in net.blocks:
        w = blk.last_weights[1].expand(len(task), -1, *task.clear.shape[-2:]).mean(1)
        pairs.append((task.density[:, 0].flatten(), w.flatten()))
    return pairs


# ----------------------------------------------------------------------------------- diagnostic
def diagnose_aggregation(config: LabConfig, scales: Sequence[float] = (1.0, 10.0, 100.0), steps: int = 40,
                         seed: int = 0, variant: str = "density", n_probe: int = 16) -> list[dict]:
    """Can ``W_m`` move? Train ``variant`` for ``steps`` steps with each aggregation lr multiplier.

    Returns:
        one row per scale: ``scale``, ``grad_first`` (aggregation gradient norm at step 0),
        ``grad_mean`` (mean over steps), ``w_m_dense``, ``w_m_thin``, ``gap`` (dense - thin),
        ``movement`` (mean ``|W_m - 0.5|``), ``loss_end`` (mean loss of the last quarter of steps),
        ``seconds``.
    """
    probe = make_task(n_probe, config.task, seed=config.eval_seed + 1, with_copies=False)
    rows = []
    for s in scales:
        cfg = replace(config, steps=steps, aggregation_lr_scale=float(s))
        _, log = train_variant(variant, cfg, seed, diagnose=True, probe=probe)
        tail = log["loss"][-max(1, steps // 4):]
        wm = log["w_m"]
        rows.append({"scale": float(s), "grad_first": log["agg_grad"][0], "grad_mean": statistics.fmean(log["agg_grad"]),
                     "w_m_dense": wm["dense"], "w_m_thin": wm["thin"], "gap": wm["gap"], "movement": wm["movement"],
                     "loss_end": statistics.fmean(tail), "seconds": log["seconds"]})
    return rows


def choose_lr_scale(rows: Sequence[dict], min_gap: float = 0.1, loss_tolerance: float = 0.05) -> float:
    """The smallest multiplier whose ``|gap|`` (W_m dense - thin) reaches ``min_gap`` while its
    end loss stays within ``loss_tolerance`` (relative) of the scale-1 (smallest scale) run;
    if none does, the multiplier with the largest ``|gap|`` among those within the tolerance."""
    rows = sorted(rows, key=lambda r: r["scale"])
    ref = rows[0]["loss_end"]
    ok = [r for r in rows if r["loss_end"] <= ref * (1 + loss_tolerance)]
    for r in ok:
        if abs(r["gap"]) >= min_gap:
            return r["scale"]
    return max(ok, key=lambda r: abs(r["gap"]))["scale"]


# ------------------------------------------------------------------------------------ the runner
def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value; NaN if any value is NaN)."""
    if any(math.isnan(x) for x in xs):
        return float("nan"), float("nan")
    mean = statistics.fmean(xs)
    return mean, (statistics.stdev(xs) if len(xs) > 1 else 0.0)


@dataclass
class LabResult:
    """All runs of a lab: per (variant, seed) the region PSNRs, final loss and time.

    Attributes:
        runs: list of dicts with ``variant``, ``seed``, ``dense``, ``far``, ``thin``, ``all``,
            ``loss_end``, ``seconds``.
        hazy: region PSNRs of the hazy input itself (the floor).
        config: the :class:`LabConfig` used.
        nets: ``{(variant, seed): LabNet}``.
        preds: ``{(variant, seed): (n_eval, 3, h, w)}`` predictions on the evaluation set.
        eval_task: the evaluation :class:`MechanismTask`.
    """

    runs: list[dict]
    hazy: dict[str, float]
    config: LabConfig
    nets: dict = field(default_factory=dict, repr=False)
    preds: dict = field(default_factory=dict, repr=False)
    eval_task: MechanismTask | None = field(default=None, repr=False)

    @property
    def variants(self) -> list[str]:
        return list(dict.fromkeys(r["variant"] for r in self.runs))

    def values(self, variant: str, metric: str) -> list[float]:
        """Per-seed values of one metric, in seed order."""
        return [r[metric] for r in sorted(self.runs, key=lambda r: r["seed"]) if r["variant"] == variant]

    def table(self) -> dict[str, dict[str, tuple[float, float]]]:
        """``{variant: {metric: (mean, std)}}`` over seeds (sample std; 0 with one seed)."""
        return {v: {m: _mean_std(self.values(v, m)) for m in METRICS} for v in self.variants}

    def paired(self, a: str, b: str, metric: str) -> tuple[float, float]:
        """Mean and sample std over seeds of ``metric(a) - metric(b)`` (same seed, same data)."""
        return _mean_std([x - y for x, y in zip(self.values(a, metric), self.values(b, metric))])

    def to_markdown(self) -> str:
        """The table as markdown: mean ± std over seeds, PSNR in dB."""
        n = len({r["seed"] for r in self.runs})
        lines = [f"| variant (n = {n} seed{'s' if n != 1 else ''}) | " + " | ".join(f"PSNR {m}" for m in METRICS) + " |",
                 "|---|" + "---:|" * len(METRICS)]
        lines.append("| hazy input | " + " | ".join(f"{self.hazy[m]:.2f}" for m in METRICS) + " |")
        for v, row in self.table().items():
            lines.append(f"| {v} | " + " | ".join(f"{row[m][0]:.2f} ± {row[m][1]:.2f}" for m in METRICS) + " |")
        return "\n".join(lines)


def run_lab(config: LabConfig, variants: Sequence[str] = VARIANTS, seeds: Sequence[int] = (0, 1, 2),
            keep: str = "first", verbose: bool = True) -> LabResult:
    """Train every variant with every seed on the same data and score it on one evaluation set.

    Args:
        config: the :class:`LabConfig` (its ``aggregation_lr_scale`` applies to every variant
            that has aggregation parameters).
        variants: variant names (:data:`VARIANTS`).
        seeds: seeds; each seed fixes the initialisation and the training batches.
        keep: which nets and predictions to keep: ``"first"`` seed, ``"all"`` or ``"none"``.
        verbose: one line per run.

    Returns:
        a :class:`LabResult`.
    """
    task = make_task(config.n_eval, config.task, seed=config.eval_seed)
    reach = config.reach
    hazy = region_psnr(task.hazy, task, reach)
    result = LabResult([], hazy, config, eval_task=task)
    for seed in seeds:
        for v in variants:
            net, log = train_variant(v, config, seed)
            scores, pred = evaluate_net(net, task, reach)
            tail = log["loss"][-max(1, config.steps // 10):]
            result.runs.append({"variant": v, "seed": int(seed), **scores, "loss_end": statistics.fmean(tail),
                                "seconds": log["seconds"]})
            if keep == "all" or (keep == "first" and seed == seeds[0]):
                result.nets[v, int(seed)] = net
                result.preds[v, int(seed)] = pred
            if verbose:
                print(f"seed {seed} {v:<9}  " + "  ".join(f"{m} {scores[m]:5.2f}" for m in METRICS)
                      + f"  ({log['seconds']:.0f} s)", flush=True)
    return result


def result_to_dict(result: LabResult, command: str = "") -> dict:
    """The table of a :class:`LabResult` as plain data (runs, hazy floor, config), for a JSON file."""
    return {"command": command, "config": result.config.to_dict(), "hazy": result.hazy, "runs": result.runs}


def load_result(path) -> LabResult:
    """A :class:`LabResult` (table only: no nets, no predictions) from :func:`result_to_dict`'s JSON."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    cfg = dict(data["config"])
    cfg["task"] = TaskConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg["task"].items()})
    return LabResult(runs=data["runs"], hazy=data["hazy"], config=LabConfig(**cfg))


def main(argv=None) -> int:
    """``python -m cliphaze.analysis.mechanism_lab``: the lab at a chosen budget, written to JSON/markdown.

    Every variant x seed is trained and scored as in lesson 07; for variants with aggregation
    weights the run also records ``W_m`` on dense and thin pixels (:func:`mean_w_m`).
    """
    import argparse
    import json
    import shlex
    import sys
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m cliphaze.analysis.mechanism_lab", description=main.__doc__)
    p.add_argument("--steps", type=int, default=LabConfig.steps, help="training steps per run (default: %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--lr-scale", type=float, default=100.0,
                   help="aggregation learning-rate multiplier (lesson 07's diagnostic picks 100; default: %(default)s)")
    p.add_argument("--json", type=Path, default=None, help="write the runs as JSON here")
    p.add_argument("--markdown", type=Path, default=None, help="write the table as markdown here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    config = replace(LabConfig(), steps=args.steps, aggregation_lr_scale=args.lr_scale)
    result = run_lab(config, variants=args.variants, seeds=args.seeds, keep="all")
    for run in result.runs:
        net = result.nets.get((run["variant"], run["seed"]))
        if net is not None and aggregation_parameters(net):
            run["w_m"] = mean_w_m(net, result.eval_task)
    command = "python -m cliphaze.analysis.mechanism_lab " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    table = result.to_markdown()
    print(table)
    if args.json:
        args.json.write_text(json.dumps(result_to_dict(result, command), indent=2) + "\n")
    if args.markdown:
        gaps = [f"seed {r['seed']}: {r['w_m']['gap']:+.3f}" for r in result.runs if r["variant"] == "density" and "w_m" in r]
        args.markdown.write_text(f"Produced by `{command}` (one CPU thread).\n\n{table}\n\n"
                                 f"W_m (density variant) on dense minus thin pixels: {', '.join(gaps) or 'n/a'}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
