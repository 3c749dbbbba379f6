"""The training configuration: one dataclass, filled from flags or a YAML/JSON file, saved in every
checkpoint so that a run can be resumed and its model explained.

Lesson: ``notebooks/05_full_training.ipynb``, section "Training".
"""

from __future__ import annotations

import json
import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from cliphaze.defaults import SHIPPED_GUIDE

__all__ = ["TrainConfig", "load_config_file", "RESUME_MUST_MATCH"]

#: Fields that must be equal when a run is resumed (they define what is being trained).
RESUME_MUST_MATCH = ("preset", "aggregation", "guide", "data", "data_kind", "haze_kind", "haze_families", "haze_dense",
                     "haze_airlight_colour", "haze_noise", "haze_jpeg", "haze_bright", "real_depth_folder", "crop",
                     "batch_size", "lr", "weight_decay", "warmup_steps", "min_lr_ratio", "l1_weight", "ssim_weight",
                     "freq_weight", "seed", "prompts")


@dataclass
class TrainConfig:
    """Everything a training run depends on.

    Attributes:
        preset: network preset (:data:`cliphaze.model.PRESETS`).
        aggregation: the blocks' aggregation kind (overrides the preset's): ``"density"`` or
            ``"semantic"`` (CLIP-guided), or an unguided baseline ``"static"``, ``"sum"``,
            ``"attention"``, ``"mamba"`` (no guide is loaded).
        guide: CLIP guide spec (:mod:`cliphaze.model.guide`): ``"haze-clip-small"`` (the
            shipped one), ``"open_clip:ViT-B-32/openai"`` (an open_clip model whose weights are on
            this machine), ``"tiny-test-clip"`` (tests), optionally ``"...@PROMPTS.pt"``.
        prompts: stage 1. ``"shipped"`` uses the guide's shipped learned prompts (stage 1 done
            once, by lesson 02); ``"learn"`` learns a new prompt pair on this run's training photos
            (:func:`cliphaze.clip.prompts.train_prompts`) and saves it as ``prompts.pt`` in the run
            folder before stage 2.
        data: training sources. ``data_kind="synthetic"``: folders of clear photos (searched
            recursively) hazed on the fly; ``"benchmark"``: one paired benchmark folder (its train
            split).
        data_kind: ``"synthetic"`` or ``"benchmark"``.
        haze_kind: synthetic haze ``"homogeneous"``, ``"nonhomogeneous"`` or ``"mixed"``.
        haze_families: synthetic haze families to draw from, one per item (names in
            :data:`cliphaze.haze.HAZE_FAMILIES`: ramp, fields, room, real-depth, fog); None keeps
            the original synthesiser and ``haze_kind``. The options below need families.
        haze_dense: with families, probability that an item gets very dense haze.
        haze_airlight_colour: with families, the airlight colour family (near-white, grey, warm,
            cool or any).
        haze_noise: with families, the largest sensor-noise sigma (each item draws U(0, noise)).
        haze_jpeg: with families, a ``[low, high]`` JPEG quality range hazy items are re-encoded
            at, or None.
        haze_bright: with families, probability that an item's clear photo crop is replaced by
            bright, white or textureless content (walls, sky, white furniture) before hazing.
        real_depth_folder: with the real-depth family, where to find RGB-D pairs (``"auto"``: the
            development data when present).
        crop: training crop side.
        batch_size: images per step, all processes together (``torchrun`` splits it evenly over
            the processes, so the same config gives the same update on any number of them).
        steps: optimisation steps in total.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW decoupled weight decay.
        warmup_steps: linear warm-up from 0 to ``lr``.
        min_lr_ratio: the cosine schedule ends at ``lr * min_lr_ratio``.
        grad_clip: maximum global gradient norm (0 disables clipping).
        l1_weight, ssim_weight, freq_weight: loss weights (:mod:`cliphaze.train.losses`).
        val_data: validation sources (same kinds as ``data``; empty: no validation).
        val_kind: ``"synthetic"`` (fixed seeded haze over clear photos) or ``"benchmark"``
            (its test split, full images).
        val_count: validation images.
        val_crop: side of the seeded crop taken from each synthetic validation image (the same
            crop and haze at every validation).
        val_every: validate and write ``last.pt`` every this many steps (the most a killed run loses).
        log_every: history/progress interval.
        seed: seeds the network initialisation, the data order, the crops and the haze.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``... (AMP and channels-last only on CUDA).
        threads: torch CPU threads (None: leave as is; ``cliphaze train`` defaults to
            :data:`cliphaze.cli_types.DEFAULT_THREADS`).
        num_workers: DataLoader worker processes preparing batches (0: in the training process).
            Every sample is seeded by ``(seed, epoch, index)``, so the batches do not depend on it.
        out: run folder (``last.pt``, ``best.pt``, ``history.json``, ``config.json``).
    """

    preset: str = "tiny"
    aggregation: str = "density"
    guide: str = SHIPPED_GUIDE
    prompts: str = "shipped"
    data: list[str] = field(default_factory=list)
    data_kind: str = "synthetic"
    haze_kind: str = "mixed"
    haze_families: list[str] | None = None
    haze_dense: float = 0.0
    haze_airlight_colour: str = "near-white"
    haze_noise: float = 0.0
    haze_jpeg: list[int] | None = None
    haze_bright: float = 0.0
    real_depth_folder: str = "auto"
    crop: int = 64
    batch_size: int = 16
    steps: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    l1_weight: float = 1.0
    ssim_weight: float = 0.2
    freq_weight: float = 0.0
    val_data: list[str] = field(default_factory=list)
    val_kind: str = "synthetic"
    val_count: int = 16
    val_crop: int = 128
    val_every: int = 200
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    num_workers: int = 0
    out: str = "runs/tiny"

    def __post_init__(self):
        if isinstance(self.data, (str, os.PathLike)):
            self.data = [str(self.data)]
        if isinstance(self.val_data, (str, os.PathLike)):
            self.val_data = [str(self.val_data)]
        self.data = [str(d) for d in self.data]
        self.val_data = [str(d) for d in self.val_data]
        problems = []
        if self.data_kind not in ("synthetic", "benchmark"):
            problems.append(f"data_kind must be 'synthetic' or 'benchmark', got {self.data_kind!r}")
        if self.val_kind not in ("synthetic", "benchmark"):
            problems.append(f"val_kind must be 'synthetic' or 'benchmark', got {self.val_kind!r}")
        if self.prompts not in ("shipped", "learn"):
            problems.append(f"prompts must be 'shipped' or 'learn', got {self.prompts!r}")
        from cliphaze.model.presets import PRESETS

        if self.preset not in PRESETS:
            problems.append(f"preset must be one of {sorted(PRESETS)}, got {self.preset!r}")
        if self.haze_kind not in ("homogeneous", "nonhomogeneous", "mixed"):
            problems.append(f"haze_kind must be homogeneous, nonhomogeneous or mixed, got {self.haze_kind!r}")
        from cliphaze.block.aggregation import AGGREGATION_KINDS
        from cliphaze.model.guide import GuideSpec

        try:
            GuideSpec.parse(self.guide)
        except ValueError as err:
            problems.append(str(err))

        if self.aggregation not in AGGREGATION_KINDS:
            problems.append(f"aggregation must be one of {AGGREGATION_KINDS}, got {self.aggregation!r}")
        if self.haze_families is not None:
            if isinstance(self.haze_families, str):
                self.haze_families = [self.haze_families]
            self.haze_families = [str(f) for f in self.haze_families]
            from cliphaze.haze.families import AIRLIGHT_COLOURS, HAZE_FAMILIES

            unknown = [f for f in self.haze_families if f not in HAZE_FAMILIES]
            if unknown or not self.haze_families:
                problems.append(f"haze_families must name one or more of {sorted(HAZE_FAMILIES)}, "
                                f"got {self.haze_families!r}")
            if self.haze_airlight_colour not in AIRLIGHT_COLOURS:
                problems.append(f"haze_airlight_colour must be one of {AIRLIGHT_COLOURS}, "
                                f"got {self.haze_airlight_colour!r}")
        else:
            changed = [name for name, default in (("haze_dense", 0.0), ("haze_airlight_colour", "near-white"),
                                                  ("haze_noise", 0.0), ("haze_jpeg", None),
                                                  ("haze_bright", 0.0))
                       if getattr(self, name) != default]
            if changed:
                problems.append(f"{', '.join(changed)} only act on haze families: give haze_families too "
                                "(e.g. --haze-families ramp fields room fog)")
        if self.haze_jpeg is not None:
            jpeg = list(self.haze_jpeg)
            if len(jpeg) != 2 or not all(_is_int(q) for q in jpeg) or not 1 <= jpeg[0] <= jpeg[1] <= 100:
                problems.append(f"haze_jpeg must be two qualities LOW HIGH with 1 <= LOW <= HIGH <= 100, got {jpeg!r}")
            self.haze_jpeg = jpeg
        self.real_depth_folder = str(self.real_depth_folder)
        for name in ("crop", "batch_size", "steps", "val_every", "log_every", "val_count", "val_crop"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be an integer >= 1, got {value!r}")
        for name in ("warmup_steps", "seed", "num_workers"):
            value = getattr(self, name)
            if not _is_int(value) or value < 0:
                problems.append(f"{name} must be an integer >= 0, got {value!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            problems.append(f"threads must be an integer >= 1 (or None), got {self.threads!r}")
        numbers_ok = True
        for name in ("lr", "weight_decay", "min_lr_ratio", "grad_clip", "l1_weight", "ssim_weight", "freq_weight",
                     "haze_dense", "haze_noise", "haze_bright"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value):
                problems.append(f"{name} must be a finite number, got {value!r}")
                numbers_ok = False
        if not numbers_ok:
            raise ValueError("invalid training config: " + "; ".join(problems))
        if self.lr <= 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.grad_clip < 0:
            problems.append(f"grad_clip must be >= 0 (0 disables clipping), got {self.grad_clip}")
        if not 0 <= self.min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must lie in [0, 1], got {self.min_lr_ratio}")
        if not 0 <= self.haze_dense <= 1:
            problems.append(f"haze_dense is a probability in [0, 1], got {self.haze_dense}")
        if not 0 <= self.haze_bright <= 1:
            problems.append(f"haze_bright is a probability in [0, 1], got {self.haze_bright}")
        if self.haze_noise < 0:
            problems.append(f"haze_noise must be >= 0, got {self.haze_noise}")
        if min(self.l1_weight, self.ssim_weight, self.freq_weight) < 0 or \
                self.l1_weight + self.ssim_weight + self.freq_weight == 0:
            problems.append("loss weights must be >= 0 and not all 0")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Build from a dict; unknown keys raise ``ValueError`` naming them.

        Configs written before ``aggregation`` replaced ``guidance`` still load: ``guidance``
        ``"density"``/``"semantic"`` become that aggregation, ``"none"`` becomes ``"static"``.
        """
        if "guidance" in d:
            d = dict(d)
            guidance = d.pop("guidance")
            kind = {"density": "density", "semantic": "semantic", "none": "static"}.get(guidance)
            if kind is None:
                raise ValueError(f"guidance must be density, semantic or none, got {guidance!r} "
                                 "(newer configs say aggregation=...)")
            if d.setdefault("aggregation", kind) != kind:
                raise ValueError(f"aggregation={d['aggregation']!r} contradicts guidance={guidance!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a training config from ``.json``, ``.yaml`` or ``.yml`` (a flat mapping of fields).

    Raises:
        ValueError: unreadable file or not a mapping (names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such config file")
    text = path.read_text()
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError as err:
                raise ValueError(f"{path}: reading YAML needs PyYAML (pip install pyyaml), or use JSON") from err
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except (json.JSONDecodeError, Exception) as err:  # yaml.YAMLError has no common base we can name
        if isinstance(err, ValueError) and str(path) in str(err):
            raise
        raise ValueError(f"{path}: cannot be parsed ({err.__class__.__name__}: {err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a training config must be a mapping of field names to values")
    return data
