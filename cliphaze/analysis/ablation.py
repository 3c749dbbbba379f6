"""The ablation runner: tiny CLIPHaze variants trained with the same loop, several seeds, mean and spread.

Each *variant* changes one thing against the reference model (``density``: density-aware
aggregation, four scan directions, the shipped learned prompts):

==================  ===========  ====================================================================
variant             group        change
==================  ===========  ====================================================================
``density``         reference    none (the full model, ``aggregation="density"``)
``semantic``        aggregation  semantic-aware aggregation (CLIP image tokens instead of the map)
``static``          aggregation  no CLIP; learned per-channel weights, the same at every pixel
``sum``             aggregation  no CLIP; fixed ``0.5 F_attn + 0.5 F_mamba``
``attention-only``  aggregation  no CLIP; the Mamba path removed (``W_a = 1``)
``mamba-only``      aggregation  no CLIP; the attention path removed (``W_m = 1``)
``k=1``, ``k=2``    directions   SS2D scans 1 (row-major) or 2 (row-major, both ways) directions
``hand-prompts``    prompts      the density map comes from the hand-written pair
                                 ("hazy image." / "clear image.") instead of the learned pair
==================  ===========  ====================================================================

*Protocol.* For every (variant, seed): :func:`cliphaze.train.train` trains the ``tiny`` preset with
the variant's network on synthetic haze over clear photos (``haze_kind`` of the config; the seed
fixes initialisation, data order, crops and haze), then the model is scored with
:func:`cliphaze.evaluate.evaluate` (PSNR / SSIM, :mod:`cliphaze.metrics`) on (a) fixed synthetic
non-homogeneous hazy images made from held-out photos and (b) pairs of a paired benchmark (the
SOTS-indoor development subset when present: evaluation only, never training). Per variant the
runner reports the mean and the sample standard deviation over seeds and, because every seed
trains every variant on the same batches, the *paired* difference to the reference seed by seed
(mean and standard deviation). A difference whose 95% confidence interval
(``mean ± t_{0.975, n-1} std / sqrt(n_seeds)``, Student t) contains zero is within seed noise and
:meth:`AblationResult.to_markdown` marks it so.

*How variants are built.* Each variant's :class:`~cliphaze.model.NetworkConfig` (the preset with
the variant's changes, :func:`variant_network`) is passed to :func:`cliphaze.train.train` as its
``network``, so every variant goes through exactly the loop that trains the shipped model. The
hand-written prompts are written as a prompt file (:class:`cliphaze.clip.PromptLearner`
initialised with the words and never trained: its embeddings equal
``encode_text(["hazy image.", "clear image."])``) and passed as the guide
``haze-clip-small@<file>``.

*Scale.* :meth:`AblationConfig.cpu` runs in minutes on one CPU core and shows only large effects;
:meth:`AblationConfig.gpu` (``--long``) is the longer run for a GPU. Command line::

    python -m cliphaze.analysis.ablation --out docs/ablation_cpu.json            # CPU size
    python -m cliphaze.analysis.ablation --long --device cuda --out ablation.json # GPU size

Lesson: ``notebooks/06_evaluation.ipynb``, section "Ablations".
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cliphaze.defaults import SHIPPED_GUIDE

__all__ = ["AblationVariant", "VARIANTS", "AblationConfig", "AblationData", "AblationResult", "default_data",
           "hand_prompt_file", "run_ablation", "variant_network", "main"]


@dataclass(frozen=True)
class AblationVariant:
    """One ablation arm.

    Attributes:
        name: label in tables.
        group: ``"reference"``, ``"aggregation"``, ``"directions"`` or ``"prompts"``.
        network: :class:`~cliphaze.model.NetworkConfig` fields changed from the preset.
        prompts: ``"learned"`` (the guide's shipped learned pair) or ``"hand"``.
        description: what changes, in words.
    """

    name: str
    group: str
    network: dict = field(default_factory=dict)
    prompts: str = "learned"
    description: str = ""


VARIANTS: dict[str, AblationVariant] = {v.name: v for v in (
    AblationVariant("density", "reference", {"aggregation": "density"}, "learned",
                    "density-aware aggregation, 4 directions, learned prompts (the full model)"),
    AblationVariant("semantic", "aggregation", {"aggregation": "semantic"}, "learned",
                    "semantic-aware aggregation (CLIP tokens)"),
    AblationVariant("static", "aggregation", {"aggregation": "static"}, "learned",
                    "no CLIP: learned per-channel weights"),
    AblationVariant("sum", "aggregation", {"aggregation": "sum"}, "learned",
                    "no CLIP: fixed 0.5/0.5 sum"),
    AblationVariant("attention-only", "aggregation", {"aggregation": "attention"},
                    "learned", "no CLIP: window attention only"),
    AblationVariant("mamba-only", "aggregation", {"aggregation": "mamba"}, "learned",
                    "no CLIP: SS2D only"),
    AblationVariant("k=1", "directions", {"aggregation": "density", "directions": 1}, "learned",
                    "density-aware, 1 scan direction"),
    AblationVariant("k=2", "directions", {"aggregation": "density", "directions": 2}, "learned",
                    "density-aware, 2 scan directions"),
    AblationVariant("hand-prompts", "prompts", {"aggregation": "density"}, "hand",
                    "density-aware, hand-written prompt pair"),
)}

REFERENCE = "density"


@dataclass
class AblationConfig:
    """Sizes of an ablation run (:meth:`cpu` and :meth:`gpu` are the two named scales).

    Attributes:
        variants: names from :data:`VARIANTS` (the reference ``density`` is added when missing).
        seeds: training seeds; every variant trains once per seed.
        preset: network preset the variants modify.
        steps, batch_size, crop, lr, warmup_steps: training (see :class:`cliphaze.train.TrainConfig`).
        haze_kind: synthetic training haze (``"mixed"``: homogeneous and non-homogeneous).
        n_synthetic: held-out synthetic non-homogeneous evaluation images.
        synthetic_crop: their side (a centre-free fixed crop of each held-out photo).
        n_benchmark: benchmark pairs scored per model (None: all).
        guide: CLIP guide spec of the guided variants.
        device: ``"cpu"``, ``"cuda"``...
    """

    variants: list[str] = field(default_factory=lambda: list(VARIANTS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    preset: str = "tiny"
    steps: int = 100
    batch_size: int = 8
    crop: int = 32
    lr: float = 2e-3
    warmup_steps: int = 15
    haze_kind: str = "mixed"
    n_synthetic: int = 8
    synthetic_crop: int = 96
    n_benchmark: int | None = 4
    guide: str = SHIPPED_GUIDE
    device: str = "cpu"

    def __post_init__(self):
        unknown = [v for v in self.variants if v not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown ablation variants {unknown}; choose from {list(VARIANTS)}")
        if REFERENCE not in self.variants:
            self.variants = [REFERENCE, *self.variants]
        if not self.seeds:
            raise ValueError("give at least one seed")

    @classmethod
    def cpu(cls, **changes) -> AblationConfig:
        """Minutes on one CPU core: 100 steps of 8 crops of 32 px, 3 seeds, 4 benchmark pairs."""
        return cls(**changes)

    @classmethod
    def gpu(cls, **changes) -> AblationConfig:
        """The longer run for a GPU: 4000 steps of 16 crops of 96 px, 3 seeds, the whole benchmark.

        The device is the first CUDA device when torch sees one, else the CPU (the run then works,
        only far slower); pass ``device=...`` to choose.
        """
        import torch

        base = dict(steps=4000, batch_size=16, crop=96, lr=1e-3, warmup_steps=200, n_synthetic=32,
                    synthetic_crop=256, n_benchmark=None,
                    device="cuda" if torch.cuda.is_available() else "cpu")
        base.update(changes)
        return cls(**base)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AblationData:
    """Where an ablation's images come from.

    Attributes:
        train_files: clear photos for synthetic training haze.
        synthetic: fixed evaluation dicts ``{"hazy", "clear", "name"}`` (non-homogeneous haze over
            held-out photos).
        benchmark: paired benchmark dicts (same keys), e.g. SOTS-indoor development pairs.
        description: one line saying which data was used (print it).
    """

    train_files: list[Path]
    synthetic: list[dict]
    benchmark: list[dict]
    description: str


_FALLBACK_TRAIN = ("astronaut.png", "chelsea.png", "motorcycle_left.png", "motorcycle_right.png", "retina.jpg",
                   "hubble_deep_field.jpg")
_FALLBACK_EVAL = ("coffee.png", "rocket.jpg")


def _synthetic_eval(files: Sequence[Path], n: int, crop: int, seed: int = 4321) -> list[dict]:
    """Fixed non-homogeneous hazy crops of held-out photos (same seed -> same images)."""
    from cliphaze.data import SyntheticHazeDataset

    files = list(files)[:n] if len(files) >= n else list(files)
    ds = SyntheticHazeDataset(files, crop=crop, kind="nonhomogeneous", length=n, seed=seed, validate=False)
    out = []
    for i in range(n):
        item = ds[i]
        out.append({"hazy": item["hazy"], "clear": item["clear"], "density": item["density"],
                    "name": f"{item['name']}#{i}"})
    return out


def default_data(config: AblationConfig, shared: Path | None | str = "auto") -> AblationData:
    """The ablation's data: BSDS500 and SOTS-indoor-dev when present, else shipped photos.

    With development data (:func:`cliphaze.paths.shared_data_dir`): training photos
    ``bsds500/train``; synthetic evaluation from ``bsds500/test`` (the small CLIP guide trained on
    ``train`` and ``val``, so ``test`` is unseen by every model); benchmark pairs from
    ``sots-indoor-dev`` (evaluation only). Without it: scikit-image's colour photos (six for
    training, two held out for synthetic evaluation) and the SOTS pairs in ``data/samples``.

    Args:
        config: gives ``n_synthetic``, ``synthetic_crop`` and ``n_benchmark``.
        shared: the development data folder, ``"auto"`` to look it up, or None to force the fallback.

    Returns:
        :class:`AblationData`.
    """
    import skimage.data

    from cliphaze.data import list_images_recursive, open_benchmark
    from cliphaze.paths import samples_dir, shared_data_dir

    root = shared_data_dir() if shared == "auto" else (Path(shared) if shared else None)
    use_shared = root is not None and all((root / sub).is_dir() for sub in ("bsds500/train", "bsds500/test",
                                                                            "sots-indoor-dev"))
    if use_shared:
        train_files = list_images_recursive(root / "bsds500" / "train")
        eval_files = list_images_recursive(root / "bsds500" / "test")
        bench = open_benchmark(root / "sots-indoor-dev", split="test")
        name = "SOTS-indoor-dev"
        where = (f"BSDS500 train ({len(train_files)} photos) for training, BSDS500 test (held out from everything, "
                 "the small CLIP included) for synthetic evaluation")
    else:
        d = Path(skimage.data.data_dir)
        train_files = [d / f for f in _FALLBACK_TRAIN if (d / f).is_file()]
        eval_files = [d / f for f in _FALLBACK_EVAL if (d / f).is_file()]
        bench = open_benchmark(samples_dir(), split="all")
        name = "data/samples SOTS pairs"
        where = f"scikit-image photos ({len(train_files)} for training, {len(eval_files)} held out for synthetic evaluation)"
    # Spread the benchmark subset evenly over the sorted pairs (scenes and haze levels).
    if use_shared:
        indices = list(range(len(bench)))
    else:
        indices = [i for i in range(len(bench)) if bench[i]["name"].startswith("sots")]
    n = len(indices) if config.n_benchmark is None else min(config.n_benchmark, len(indices))
    chosen = sorted({indices[round(k * (len(indices) - 1) / max(1, n - 1))] for k in range(n)}) if n else []
    benchmark = [{"hazy": bench[i]["hazy"], "clear": bench[i]["clear"], "name": bench[i]["name"]} for i in chosen]
    synthetic = _synthetic_eval(eval_files, config.n_synthetic, config.synthetic_crop)
    description = (f"{where}; {len(synthetic)} synthetic non-homogeneous images of {config.synthetic_crop}px; "
                   f"{len(benchmark)} pairs of {name} ({', '.join(b['name'] for b in benchmark)})")
    return AblationData(list(train_files), synthetic, benchmark, description)


def hand_prompt_file(path: str | Path, clip=None) -> Path:
    """Write the hand-written pair ("hazy image." / "clear image.") as an untrained prompt file.

    A :class:`cliphaze.clip.PromptLearner` with two context vectors per class initialised from
    the words' token embeddings and never trained; its text embeddings equal
    ``clip.encode_text(["hazy image.", "clear image."])`` (the template ends in a full stop).

    Args:
        path: where to write.
        clip: the guide's backbone (default: the shipped small CLIP).

    Returns:
        ``path``.
    """
    from cliphaze.clip import PromptLearner, load_clip, save_prompts

    clip = clip if clip is not None else load_clip()
    learner = PromptLearner(clip, n_ctx=2, class_words=None, init=("hazy image", "clear image"))
    return save_prompts(learner, path, extra={"note": "hand-written pair, not trained"})


def _guide_backbone(guide: str):
    """The frozen backbone of guide spec ``guide`` (as :func:`cliphaze.model.build_guide` loads it)."""
    from cliphaze.model.guide import guide_backbone

    return guide_backbone(guide)


def variant_network(variant: AblationVariant | str, preset: str = "tiny"):
    """The :class:`~cliphaze.model.NetworkConfig` of a variant (the preset with its changes)."""
    from cliphaze.model import get_preset

    v = VARIANTS[variant] if isinstance(variant, str) else variant
    return get_preset(preset, **v.network)


@dataclass
class AblationResult:
    """Scores of every (variant, seed) and what the runner used.

    Attributes:
        rows: one dict per (variant, seed): ``variant``, ``seed``, ``params``, ``train_seconds``,
            ``final_loss``, and ``synthetic_psnr``, ``synthetic_ssim``, ``benchmark_psnr``,
            ``benchmark_ssim`` (means over the evaluation images).
        config: the :class:`AblationConfig` as a dict.
        data: :attr:`AblationData.description`.
        baseline: the same four scores of the hazy input (the floor).
    """

    rows: list[dict]
    config: dict
    data: str
    baseline: dict = field(default_factory=dict)

    METRICS = ("synthetic_psnr", "synthetic_ssim", "benchmark_psnr", "benchmark_ssim")

    def variants(self) -> list[str]:
        return list(dict.fromkeys(r["variant"] for r in self.rows))

    def summary(self) -> list[dict]:
        """Per variant and metric: mean, sample std over seeds (ddof 1; 0 with one seed), n, and the
        paired difference to the reference (mean and std over the seeds both ran)."""
        ref = {r["seed"]: r for r in self.rows if r["variant"] == REFERENCE}
        out = []
        for v in self.variants():
            rs = [r for r in self.rows if r["variant"] == v]
            entry = {"variant": v, "group": VARIANTS[v].group if v in VARIANTS else "", "n": len(rs),
                     "params": rs[0].get("params")}
            for m in self.METRICS:
                vals = [r[m] for r in rs]
                entry[m] = statistics.fmean(vals)
                entry[m + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
                diffs = [r[m] - ref[r["seed"]][m] for r in rs if r["seed"] in ref]
                entry[m + "_diff"] = statistics.fmean(diffs) if diffs else math.nan
                entry[m + "_diff_std"] = statistics.stdev(diffs) if len(diffs) > 1 else math.nan
            out.append(entry)
        return out

    @staticmethod
    def _diff_cell(mean: float, std: float, n: int, digits: int) -> str:
        if mean != mean:
            return "-"
        if std != std:  # one seed: no spread, no claim
            return f"{mean:+.{digits}f} (1 seed)"
        from scipy.stats import t as student_t

        half_width = float(student_t.ppf(0.975, n - 1)) * std / math.sqrt(n)  # 95% CI of the mean difference
        mark = "" if abs(mean) > max(half_width, 0.5 * 10**-digits) else " ~"
        return f"{mean:+.{digits}f} ± {std:.{digits}f}{mark}"

    def to_markdown(self) -> str:
        """The ablation table: mean ± std over seeds, and the paired difference to the reference.

        A ``~`` after a difference marks it as within seed noise: the 95% confidence interval of the
        paired difference, ``mean ± t_{0.975, n-1} std / sqrt(n)``, contains 0.
        """
        c = self.config
        lines = [
            f"Ablation: preset {c['preset']}, {c['steps']} steps of {c['batch_size']} crops of {c['crop']} px "
            f"({c['haze_kind']} synthetic haze), seeds {c['seeds']}, device {c['device']}.",
            f"Data: {self.data}.",
            "Cells: mean ± sample std over seeds; Δ: paired difference to `density` (same seed), mean ± std; "
            "`~` = within seed noise: the 95% confidence interval of the paired difference (Student t, n - 1 "
            "degrees of freedom) contains 0, or |Δ| is below the table's precision.",
            "",
            "| variant | params | synthetic NH PSNR | Δ | synthetic NH SSIM | benchmark PSNR | Δ | benchmark SSIM |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        if self.baseline:
            b = self.baseline
            lines.append(f"| hazy input | - | {b['synthetic_psnr']:.2f} | | {b['synthetic_ssim']:.3f} | "
                         f"{b['benchmark_psnr']:.2f} | | {b['benchmark_ssim']:.3f} |")
        for s in self.summary():
            n = s["n"]
            d_syn = "ref" if s["variant"] == REFERENCE else self._diff_cell(s["synthetic_psnr_diff"],
                                                                            s["synthetic_psnr_diff_std"], n, 2)
            d_ben = "ref" if s["variant"] == REFERENCE else self._diff_cell(s["benchmark_psnr_diff"],
                                                                            s["benchmark_psnr_diff_std"], n, 2)
            params = f"{s['params']:,}" if s.get("params") else "-"
            lines.append(
                f"| {s['variant']} | {params} | {s['synthetic_psnr']:.2f} ± {s['synthetic_psnr_std']:.2f} | {d_syn} | "
                f"{s['synthetic_ssim']:.3f} ± {s['synthetic_ssim_std']:.3f} | "
                f"{s['benchmark_psnr']:.2f} ± {s['benchmark_psnr_std']:.2f} | {d_ben} | "
                f"{s['benchmark_ssim']:.3f} ± {s['benchmark_ssim_std']:.3f} |"
            )
        return "\n".join(lines)

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"config": self.config, "data": self.data, "baseline": self.baseline,
                                    "rows": self.rows}, indent=1) + "\n")
        return path

    @classmethod
    def load_json(cls, path: str | Path) -> AblationResult:
        d = json.loads(Path(path).read_text())
        return cls(rows=d["rows"], config=d["config"], data=d["data"], baseline=d.get("baseline", {}))


def _mean_scores(model_fn, data: AblationData, label: str) -> dict:
    from cliphaze.evaluate import evaluate

    out = {}
    for key, items in (("synthetic", data.synthetic), ("benchmark", data.benchmark)):
        s = evaluate({label: model_fn}, items, dataset_name=key).summary()[0]
        out[f"{key}_psnr"], out[f"{key}_ssim"] = s["psnr"], s["ssim"]
    return out


def run_ablation(
    config: AblationConfig,
    data: AblationData | None = None,
    work_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
    on_result: Callable[[AblationResult], None] | None = None,
) -> AblationResult:
    """Train and score every (variant, seed) of ``config`` (module docstring: protocol).

    Args:
        config: :class:`AblationConfig`.
        data: :class:`AblationData` (default :func:`default_data`).
        work_dir: run folders (checkpoints of each run; default a temporary folder, deleted).
        log: one line per finished run.
        on_result: called after each finished run with the :class:`AblationResult` so far (e.g. to
            save partial results: runs go seed by seed, so a stopped ablation keeps whole seeds).

    Returns:
        :class:`AblationResult`.
    """
    from cliphaze.data import SyntheticHazeDataset
    from cliphaze.model.guide import GuideSpec
    from cliphaze.train import TrainConfig, train

    data = data if data is not None else default_data(config)
    tmp = None
    if work_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="cliphaze_ablation_")
        work_dir = tmp.name
    work_dir = Path(work_dir)
    try:
        baseline = _mean_scores(lambda x: x, data, "hazy")
        hand_file = None
        rows = []
        nets = {name: variant_network(VARIANTS[name], config.preset) for name in config.variants}
        # Seed-major order: an interrupted run still has every variant for the seeds it finished.
        for seed in config.seeds:
            for variant_name in config.variants:
                variant, net_cfg = VARIANTS[variant_name], nets[variant_name]
                guide = config.guide
                if variant.prompts == "hand" and net_cfg.guided:
                    if hand_file is None:
                        hand_file = hand_prompt_file(work_dir / "hand_prompts.pt", _guide_backbone(config.guide))
                    guide = str(GuideSpec.parse(config.guide).with_prompts(hand_file))
                train_set = SyntheticHazeDataset(data.train_files, crop=config.crop, kind=config.haze_kind, seed=seed,
                                                 validate=False)
                run_dir = work_dir / f"{variant_name}_seed{seed}".replace("=", "")
                tc = TrainConfig(preset=config.preset, aggregation=net_cfg.aggregation, guide=guide, prompts="shipped",
                                 crop=config.crop, batch_size=config.batch_size, steps=config.steps, lr=config.lr,
                                 warmup_steps=min(config.warmup_steps, config.steps), val_every=config.steps,
                                 log_every=max(1, config.steps // 10), seed=seed, device=config.device,
                                 out=str(run_dir))
                t0 = time.perf_counter()
                result = train(tc, progress=False, datasets=(train_set, []), log=lambda s: None, network=net_cfg,
                               overwrite=True)
                seconds = time.perf_counter() - t0
                model = result["model"].eval()

                def model_fn(x, model=model):
                    import torch

                    return torch.stack([model.dehaze_tensor(img, tile=0) for img in x])

                scores = _mean_scores(model_fn, data, variant_name)
                losses = result["history"]["loss"]
                row = {"variant": variant_name, "seed": seed,
                       "params": sum(p.numel() for p in model.net.parameters()),
                       "train_seconds": seconds, "final_loss": statistics.fmean(losses[-10:]), **scores}
                rows.append(row)
                log(f"{variant_name:>15} seed {seed}: synthetic {scores['synthetic_psnr']:.2f} dB, "
                    f"benchmark {scores['benchmark_psnr']:.2f} dB, trained in {seconds:.0f} s")
                if on_result is not None:
                    on_result(AblationResult(rows=list(rows), config=config.to_dict(), data=data.description,
                                             baseline=baseline))
                del model, result
        return AblationResult(rows=rows, config=config.to_dict(), data=data.description, baseline=baseline)
    finally:
        if tmp is not None:
            tmp.cleanup()


def main(argv: list[str] | None = None, prog: str = "python -m cliphaze.analysis.ablation") -> int:
    """Command line (also ``cliphaze ablate``): run an ablation and write its JSON (and Markdown table).

    Imports torch only after parsing, so ``--help`` works without it.
    """
    from cliphaze.cli_types import add_threads_arg, apply_threads, positive_int, seed_list

    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument("--long", action="store_true", help="the longer GPU-sized run (AblationConfig.gpu)")
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--seeds", type=seed_list, default=None, help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--steps", type=positive_int, default=None, help="training steps per run")
    p.add_argument("--n-benchmark", type=positive_int, default=None, help="benchmark pairs per model (default: config)")
    p.add_argument("--device", default=None, help="cpu, cuda, ...")
    p.add_argument("--no-shared-data", action="store_true", help="use the shipped fallback photos even when "
                   "development data is present")
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    p.add_argument("--markdown", type=Path, default=None, help="also write the Markdown table here")
    add_threads_arg(p)
    args = p.parse_args(argv)
    changes = {}
    if args.variants:
        changes["variants"] = [v.strip() for v in args.variants.split(",") if v.strip()]
    if args.seeds:
        changes["seeds"] = list(args.seeds)
    if args.steps:
        changes["steps"] = args.steps
    if args.n_benchmark is not None:
        changes["n_benchmark"] = args.n_benchmark
    if args.device:
        changes["device"] = args.device
    try:
        config = AblationConfig.gpu(**changes) if args.long else AblationConfig.cpu(**changes)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if config.device == "cpu":
        apply_threads(args)
    data = default_data(config, shared=None if args.no_shared_data else "auto")
    print("data:", data.description)
    t0 = time.perf_counter()
    result = run_ablation(config, data, on_result=lambda partial: partial.save_json(args.out))
    print(f"ablation finished in {time.perf_counter() - t0:.0f} s")
    print(f"results: {result.save_json(args.out)}")
    table = result.to_markdown()
    print(table)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python -m cliphaze.analysis.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
        args.markdown.write_text(f"{table}\n\nProduced by `{cmd}`.\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
