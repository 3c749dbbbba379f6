"""Training CLIPHaze: stage 1 (prompts) and stage 2 (the dehazing network with CLIP frozen).

Stage 1 (lesson 02) learns the hazy/clear prompt pair with the CLIP encoders frozen; by default a
run reuses the pair shipped with the guide (``prompts="shipped"``), or learns a new one on its own
training photos (``prompts="learn"``). Stage 2 trains the network with guide and prompts frozen:

- *Data.* Synthetic haze over folders of clear photos, made on the fly
  (:class:`cliphaze.data.SyntheticHazeDataset`), or the train split of a paired benchmark
  (:func:`cliphaze.data.open_benchmark`). The sample order is a pure function of the step:
  sample ``k = step * batch + j`` is item ``perm_e[k mod N]`` of epoch ``e = k // N``, with the
  permutation and every crop/haze draw seeded by ``(seed, epoch, index)``
  (:func:`batch_indices`). A ``torch.utils.data.DataLoader`` reads the batches:
  :class:`StepBatchSampler` yields the ``(epoch, index)`` pairs of steps ``start, start + 1, ...``
  and :class:`EpochIndexed` reads item ``index`` of epoch ``epoch``, so every sample is the same
  in the main process and in any worker (``num_workers``). Resuming needs no data state at all:
  the sampler starts at the resume step and replays exactly the same batches.
- *Optimisation.* AdamW; learning rate ``lr * s / warmup`` during warm-up, then cosine decay
  ``lr (r + (1 - r) (1 + cos(pi p)) / 2)`` with progress ``p`` from 0 to 1 and floor ``r`` =
  ``min_lr_ratio``; global gradient-norm clipping; on CUDA, bfloat16 autocast and channels-last.
  Weight decay applies to matrices and kernels only: biases, norms and the parameters a module
  marks ``_no_weight_decay`` (SS2D's ``A_logs`` and ``Ds``) are exempt
  (:func:`weight_decay_groups`).
- *Loss.* :class:`cliphaze.train.losses.DehazeLoss`.
- *Bookkeeping.* Every ``val_every`` steps: validation PSNR/SSIM, then ``last.pt`` (model,
  optimizer, scheduler, RNG states, step, history, config) and, when validation PSNR improves,
  ``best.pt``; both written atomically (:func:`cliphaze.model.save_checkpoint`) and made of plain
  data and tensors only (they load with ``torch.load(weights_only=True)``). A killed run loses
  at most ``val_every`` steps; ``resume=True`` continues from ``last.pt`` exactly (same parameters,
  bit for bit on CPU, as a run that was never interrupted). A folder that already holds a run is
  never silently replaced: without ``resume`` or ``overwrite`` :func:`train` refuses it.
- *Divergence.* A NaN or infinite loss or gradient norm stops the run with
  :class:`TrainingDiverged` before the optimizer step; non-finite parameters or a non-finite
  validation score stop it at the save point, before anything is written. Either way the
  checkpoints on disk are the last good ones, and the message names them.
- *Several processes.* Started by ``torchrun --nproc_per_node N -m cliphaze train ...``, the run
  uses ``torch.nn.parallel.DistributedDataParallel`` (NCCL on GPUs, gloo on CPUs). ``batch_size``
  stays the *global* batch: rank ``r`` of ``N`` takes items ``[r B/N, (r + 1) B/N)`` of each
  step's batch (``B`` divisible by ``N``), DDP averages the gradients, so the update is the
  one-process update up to float rounding. Only rank 0 validates, logs and writes files; the
  frozen CLIP guide is not wrapped (it has nothing to train).

Lesson: ``notebooks/05_full_training.ipynb``, section "Training".
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cliphaze.train.config import RESUME_MUST_MATCH, TrainConfig
from cliphaze.train.losses import DehazeLoss

__all__ = ["TrainingDiverged", "RunFolderInUse", "RUN_FILES", "train", "lr_factor", "batch_indices",
           "rank_share", "StepBatchSampler", "EpochIndexed", "make_loader", "weight_decay_groups", "Trainer",
           "TrainResult", "build_datasets", "haze_options", "evaluate_pairs", "learn_prompts_stage"]

#: Files that mark a folder as holding a training run (refused without ``resume``/``overwrite``).
RUN_FILES = ("last.pt", "best.pt", "history.json")
#: Also removed by ``overwrite=True`` (they belong to the replaced run).
_REPLACED_FILES = (*RUN_FILES, "config.json", "prompts.pt")


class TrainingDiverged(RuntimeError):
    """The loss, the gradient, the parameters or the validation score became NaN or infinite; the
    message says when, and which checkpoint really is the last good one."""


class RunFolderInUse(ValueError):
    """The output folder already holds a run and neither ``resume`` nor ``overwrite`` was asked for."""


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based): linear warm-up, then cosine.

    Args:
        step: optimisation step about to be taken.
        warmup: warm-up steps.
        total: total steps.
        min_ratio: final multiplier.

    Returns:
        ``(step + 1) / warmup`` during warm-up, else ``r + (1 - r) (1 + cos(pi p)) / 2`` with
        ``p = (step - warmup) / max(1, total - warmup)``.
    """
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> list[tuple[int, int]]:
    """The ``(epoch, item index)`` pairs of the batch at ``step`` (module docstring: data order).

    Args:
        step: 0-based step.
        batch_size: items per batch (the global batch when several processes train).
        n: items per epoch.
        seed: run seed.

    Returns:
        ``batch_size`` pairs.
    """
    out, perms = [], {}
    for k in range(step * batch_size, (step + 1) * batch_size):
        epoch, pos = divmod(k, n)
        if epoch not in perms:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perms[epoch] = torch.randperm(n, generator=g)
        out.append((epoch, int(perms[epoch][pos])))
    return out


def rank_share(items: list, rank: int, world_size: int) -> list:
    """Rank ``rank``'s contiguous share ``items[r B/N : (r + 1) B/N]`` of a global batch.

    Raises:
        ValueError: the batch does not split evenly over ``world_size`` processes.
    """
    if len(items) % world_size:
        raise ValueError(f"batch_size {len(items)} does not split evenly over {world_size} processes; "
                         f"choose a multiple of {world_size}")
    per = len(items) // world_size
    return items[rank * per:(rank + 1) * per]


class StepBatchSampler(Sampler):
    """Batch sampler of steps ``start .. end - 1``: yields this rank's share of :func:`batch_indices`.

    Each yielded batch is a list of ``(epoch, index)`` pairs, read by :class:`EpochIndexed`.

    Args:
        n: items per epoch.
        batch_size: global batch (all ranks together).
        seed: run seed.
        start, end: first step and one past the last.
        rank, world_size: this process and the number of processes.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start: int, end: int, rank: int = 0,
                 world_size: int = 1):
        if n < 1:
            raise ValueError("the training set is empty")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} does not split evenly over {world_size} processes; "
                             f"choose a multiple of {world_size}")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start, self.end, self.rank, self.world_size = start, end, rank, world_size

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):
        for step in range(self.start, self.end):
            yield rank_share(batch_indices(step, self.batch_size, self.n, self.seed), self.rank, self.world_size)


class EpochIndexed(Dataset):
    """Item ``(epoch, index)`` of a dataset with ``set_epoch``, as ``(hazy, clear)``.

    The epoch travels with the index, so a DataLoader worker (its own copy of the dataset) draws
    the same crop and haze as the main process: every draw is seeded by ``(seed, epoch, index)``.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        ds = self.dataset
        if getattr(ds, "epoch", None) != epoch and hasattr(ds, "set_epoch"):
            ds.set_epoch(epoch)
        item = ds[index]
        return item["hazy"], item["clear"]


def make_loader(dataset, config: TrainConfig, start: int, end: int, rank: int = 0, world_size: int = 1,
                pin_memory: bool = False) -> DataLoader:
    """The DataLoader of steps ``start .. end - 1`` (:class:`StepBatchSampler` over :class:`EpochIndexed`).

    Returns:
        a loader yielding ``[hazy (b, 3, crop, crop), clear (b, 3, crop, crop)]`` with
        ``b = batch_size / world_size``.
    """
    sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, start, end, rank, world_size)
    # Its own generator: creating the loader must not draw from torch's global RNG (exact resume).
    return DataLoader(EpochIndexed(dataset), batch_sampler=sampler, num_workers=config.num_workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(config.seed))


def weight_decay_groups(net: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: decay for matrices and kernels, none for the rest.

    Exempt: parameters with at most one dimension (biases, norm scales) and any parameter a module
    marks ``p._no_weight_decay = True`` (SS2D's ``A_logs`` and ``Ds``: decaying ``A_logs`` pulls
    every state towards the same decay rate ``exp(0) = 1``).

    Returns:
        ``[{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0}]``.
    """
    decay, no_decay = [], []
    for p in net.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or getattr(p, "_no_weight_decay", False) else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _collect_images(sources: list[str]) -> list[Path]:
    from cliphaze.data import list_images_recursive

    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: training data folder does not exist; check --data / --val-data")
        found = list_images_recursive(p)
        if not found:
            raise ValueError(f"{p}: no image files found (.png, .jpg, ...); give a folder of clear photos")
        files.extend(found)
    return files


def haze_options(config: TrainConfig) -> dict:
    """The haze-family keyword arguments of :class:`cliphaze.data.SyntheticHazeDataset` (empty
    without ``haze_families``: the original synthesiser)."""
    if config.haze_families is None:
        return {}
    return {"families": list(config.haze_families), "dense": config.haze_dense,
            "airlight_colour": config.haze_airlight_colour, "noise": config.haze_noise,
            "jpeg": None if config.haze_jpeg is None else tuple(config.haze_jpeg),
            "bright": config.haze_bright, "real_depth_folder": config.real_depth_folder}


def build_datasets(config: TrainConfig):
    """The training dataset and the validation images of ``config``.

    Synthetic validation images use the same haze (kind, families and their options) as training,
    with another seed, so validation measures the distribution the network is trained on.

    Returns:
        ``(train_dataset, val_pairs)`` where ``val_pairs`` is a list of ``(hazy (3, h, w), clear
        (3, h, w))`` fixed for the whole run (empty without ``val_data``).
    """
    from cliphaze.data import SyntheticHazeDataset, open_benchmark

    if not config.data:
        raise ValueError("no training data: give one or more folders (--data)")
    options = haze_options(config)
    if config.data_kind == "synthetic":
        train_set = SyntheticHazeDataset(_collect_images(config.data), crop=config.crop, kind=config.haze_kind,
                                         seed=config.seed, **options)
    else:
        if len(config.data) != 1:
            raise ValueError("data_kind='benchmark' takes exactly one benchmark folder")
        train_set = open_benchmark(config.data[0], split="train", crop=config.crop, flip=True, seed=config.seed)
    val_pairs = []
    if config.val_data:
        if config.val_kind == "synthetic":
            files = _collect_images(config.val_data)
            # a different seed from training: other crops and other haze, fixed for the whole run
            val_set = SyntheticHazeDataset(files, crop=config.val_crop, kind=config.haze_kind, seed=config.seed + 777,
                                           validate=False, **options)
            step = max(1, len(files) // config.val_count)
            for i in range(0, min(len(files), step * config.val_count), step):
                item = val_set[i]
                val_pairs.append((item["hazy"], item["clear"]))
        else:
            bench = open_benchmark(config.val_data[0], split="test")
            for i in range(min(len(bench), config.val_count)):
                item = bench[i]
                val_pairs.append((item["hazy"], item["clear"]))
    return train_set, val_pairs


def learn_prompts_stage(config: TrainConfig, run_dir: Path, log: Callable[[str], None] = print) -> str:
    """Stage 1: learn a prompt pair on the training photos and return the guide spec using it.

    Returns:
        ``"<guide without prompts>@<run_dir>/prompts.pt"`` (the file is reused when it exists).
    """
    from cliphaze.clip import save_prompts
    from cliphaze.clip.prompts import PromptLearnerConfig, train_prompts
    from cliphaze.io import read_image
    from cliphaze.model.guide import GuideSpec, guide_backbone

    path = run_dir / "prompts.pt"
    spec = GuideSpec.parse(config.guide)
    if not path.is_file():
        clip = guide_backbone(spec)
        photos = [read_image(p) for p in _collect_images(config.data)[:200]]
        log(f"stage 1: learning prompts on {len(photos)} photos")
        learner, history = train_prompts(clip, photos, PromptLearnerConfig(seed=config.seed))
        save_prompts(learner, path, extra={"final_loss": history["loss"][-1]})
        log(f"stage 1: final loss {history['loss'][-1]:.4f}, saved {path}")
    return str(spec.with_prompts(path.resolve()))


def _rng_state() -> dict:
    """Global RNG states as plain data (tensors, tuples of ints): loadable with ``weights_only=True``."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    py = state["python"]
    # weights_only loading may give lists where tuples were saved; random.setstate needs tuples
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainResult(dict):
    """What :func:`train` returns: ``model``, ``history``, ``best_psnr``, ``step``, ``run_dir``,
    ``seconds`` (keys of this dict)."""


@torch.no_grad()
def evaluate_pairs(model, pairs, device) -> dict:
    """Mean PSNR and SSIM (``cliphaze.metrics``) of ``model`` on ``(hazy, clear)`` pairs (network in eval mode)."""
    from cliphaze.metrics import psnr, ssim

    was = model.net.training
    model.net.eval()
    ps, ss = [], []
    for hazy, clear in pairs:
        out = model(hazy.unsqueeze(0).to(device)).clamp(0, 1).float().cpu()
        ps.append(float(psnr(out, clear.unsqueeze(0))))
        ss.append(float(ssim(out, clear.unsqueeze(0))) if min(clear.shape[-2:]) >= 11 else float("nan"))
    model.net.train(was)
    return {"psnr": sum(ps) / len(ps), "ssim": sum(ss) / len(ss)}


# ---------------------------------------------------------------------------------- processes
@dataclass(frozen=True)
class _Processes:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()


def _processes(device_kind: str) -> _Processes:
    """Join the ``torchrun`` process group when the environment describes one (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Processes()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return _Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _check_run_folder(run_dir: Path, resume: bool, overwrite: bool, procs: _Processes,
                      log: Callable[[str], None]) -> None:
    """Refuse to replace a run silently; with ``overwrite`` remove the old run's files first."""
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: --resume continues the run in "
                         f"{run_dir}, --overwrite replaces it")
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not found or (resume and "last.pt" in found):
        return
    if overwrite:
        procs.barrier()  # every rank has looked before rank 0 removes anything
        if procs.main:
            removed = [name for name in _REPLACED_FILES if (run_dir / name).exists()]
            for name in removed:
                (run_dir / name).unlink()
            log(f"--overwrite: removed {', '.join(removed)} from {run_dir}")
        procs.barrier()
        return
    if resume:
        raise RunFolderInUse(f"{run_dir}: holds {', '.join(found)} but no last.pt to resume from; "
                             "pass --overwrite to replace that run, or choose another --out folder")
    raise RunFolderInUse(f"{run_dir}: already holds a training run ({', '.join(found)}); pass --resume to "
                         "continue it, --overwrite to replace it, or choose another --out folder")


# ---------------------------------------------------------------------------------- the run
class Trainer:
    """One training run's state and its parts: :meth:`train_step`, :meth:`validate`, :meth:`save`.

    Args:
        config: :class:`TrainConfig`.
        model: a :class:`cliphaze.model.CLIPHaze` (its network is trained, its guide stays frozen).
        run_dir: where checkpoints go.
        device: where the network runs.
        procs: this process's rank (internal; one process by default).
        log: one-line messages.
    """

    def __init__(self, config: TrainConfig, model, run_dir: Path, device: torch.device,
                 procs: _Processes | None = None, log: Callable[[str], None] = print):
        self.config, self.model, self.device = config, model, device
        self.procs = procs or _Processes()
        self.log = log
        self.run_dir = Path(run_dir)
        self.last_path, self.best_path = self.run_dir / "last.pt", self.run_dir / "best.pt"
        self.on_cuda = device.type == "cuda"
        self.net = model.net
        if self.on_cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.module = self.net
        if self.procs.distributed:
            from torch.nn.parallel import DistributedDataParallel

            # Depthwise kernels (c, 1, 3, 3) get gradients whose stride differs only along the size-1
            # axis: the same memory layout, yet DDP warns on every run.
            warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
            self.module = DistributedDataParallel(self.net, device_ids=[device.index] if self.on_cuda else None)
        self.optimizer = torch.optim.AdamW(weight_decay_groups(self.net, config.weight_decay), lr=config.lr)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps, config.min_lr_ratio))
        self.loss_fn = DehazeLoss(config.l1_weight, config.ssim_weight, config.freq_weight)
        self.autocast_dtype = torch.bfloat16 if self.on_cuda and torch.cuda.is_bf16_supported() else torch.float16
        self.step, self.best_psnr = 0, -math.inf
        self.history: dict = {"loss": [], "records": [], "val": []}
        self.fingerprint = None
        #: ``(path, step)`` of the newest checkpoint known to be good (written or resumed from).
        self.last_good: tuple[Path, int] | None = None
        self.best_good: tuple[Path, int, float] | None = None

    # ---- state
    def restore(self, checkpoint: dict, source: Path) -> None:
        """Continue from a ``last.pt`` payload (parameters, optimizer, schedule, RNG, history)."""
        self.net.load_state_dict(checkpoint["state_dict"])
        state = checkpoint["train"]
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as err:
            raise ValueError(f"{source}: its optimizer state does not fit this version's parameter groups "
                             f"({err}); start a new run in another --out folder") from err
        self.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        self.step, self.best_psnr, self.history = state["step"], state["best_psnr"], state["history"]
        self.last_good = (source, self.step)
        if self.best_path.is_file() and math.isfinite(self.best_psnr):
            best_step = max((v["step"] for v in self.history["val"] if v["val_psnr"] == self.best_psnr), default=0)
            self.best_good = (self.best_path, best_step, self.best_psnr)

    def payload(self, with_state: bool) -> dict:
        """The checkpoint of the current step: plain data and tensors only."""
        cfg = self.config.to_dict()
        p = {"network": self.net.config.to_dict(),
             "state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
             "guide": self.fingerprint,
             "meta": {"step": self.step, "best_val_psnr": self.best_psnr, "guide_side": self.model.guide_side,
                      "train_config": cfg}}
        if with_state:
            p["train"] = {"config": cfg, "step": self.step, "optimizer": self.optimizer.state_dict(),
                          "scheduler": self.scheduler.state_dict(), "rng": _rng_state(),
                          "best_psnr": self.best_psnr, "history": self.history}
        return p

    # ---- the parts
    def _reduce(self, values: list[float]) -> list[float]:
        """Mean over ranks of a few numbers (identity in one process)."""
        if not self.procs.distributed:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.on_cuda else "cpu")
        torch.distributed.all_reduce(t)
        return (t / self.procs.world_size).tolist()

    def last_good_text(self) -> str:
        """Which checkpoint on disk really is the last good one (for error messages)."""
        if self.last_good is None:
            text = f"No checkpoint was written yet (the first save is at step {self.config.val_every})"
        else:
            text = f"The last good checkpoint is {self.last_good[0]} at step {self.last_good[1]}"
        if self.best_good is not None:
            text += f"; best.pt is from step {self.best_good[1]} ({self.best_good[2]:.2f} dB)"
        return text + "."

    def train_step(self, hazy: torch.Tensor, clear: torch.Tensor) -> dict:
        """One optimisation step on this process's share of the batch.

        Args:
            hazy, clear: ``(b, 3, h, w)`` on any device.

        Returns:
            ``{"loss", "psnr", **loss terms}`` (floats, averaged over processes).

        Raises:
            TrainingDiverged: non-finite loss or gradient norm (nothing was updated).
        """
        from cliphaze.metrics import psnr

        hazy = hazy.to(self.device, non_blocking=True)
        clear = clear.to(self.device, non_blocking=True)
        if self.on_cuda:
            hazy = hazy.contiguous(memory_format=torch.channels_last)
            clear = clear.contiguous(memory_format=torch.channels_last)
        guidance = self.model.guidance(hazy)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.on_cuda):
            pred = self.module(hazy, guidance=guidance)
        loss, parts = self.loss_fn(pred.float(), clear)
        batch_psnr = float(psnr(pred.detach().clamp(0, 1).float(), clear).mean())
        names = list(parts)
        values = self._reduce([loss.item(), batch_psnr, *(parts[k] for k in names)])
        loss_value, batch_psnr = values[0], values[1]
        parts = dict(zip(names, values[2:]))
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss became {loss_value} at step {self.step + 1} (terms {parts}); stopped before the update. "
                f"{self.last_good_text()} Lower --lr, raise --warmup-steps or check the data for broken images.")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.grad_clip if self.config.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), clip)
        if not torch.isfinite(grad_norm):
            raise TrainingDiverged(f"gradient norm became {float(grad_norm)} at step {self.step + 1}; stopped "
                                   f"before the update. {self.last_good_text()} Lower --lr or raise --warmup-steps.")
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.history["loss"].append(loss_value)
        return {"loss": loss_value, "psnr": batch_psnr, **parts}

    def validate(self, val_pairs) -> dict | None:
        """Validation PSNR/SSIM (rank 0 computes, every rank receives); None without validation images."""
        if not val_pairs and not self.procs.distributed:
            return None
        scores = evaluate_pairs(self.model, val_pairs, self.device) if (val_pairs and self.procs.main) else None
        if self.procs.distributed:
            t = torch.tensor([1.0 if scores else 0.0, *(scores.values() if scores else (0.0, 0.0))],
                             dtype=torch.float64, device=self.device if self.on_cuda else "cpu")
            torch.distributed.broadcast(t, src=0)
            have, p, s = t.tolist()
            scores = {"psnr": p, "ssim": s} if have else None
        return scores

    def check_finite(self, scores: dict | None) -> None:
        """Stop before a save point would write non-finite parameters or a NaN-scored model.

        Raises:
            TrainingDiverged: names the bad parameters (or the score) and the last good checkpoint.
        """
        bad = [name for name, p in self.net.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise TrainingDiverged(
                f"parameters became non-finite by step {self.step} ({', '.join(bad[:5])}"
                f"{' ...' if len(bad) > 5 else ''}); nothing was written for this step. {self.last_good_text()} "
                "Lower --lr or raise --warmup-steps.")
        if scores is not None and not math.isfinite(scores["psnr"]):
            raise TrainingDiverged(
                f"validation PSNR is {scores['psnr']} at step {self.step} (the network's output on the "
                f"validation images is not finite); nothing was written for this step. {self.last_good_text()} "
                "Lower --lr, or check the validation images.")

    def save(self, scores: dict | None) -> bool:
        """Write ``best.pt`` (when ``scores`` improve) and ``last.pt``, and the history (rank 0).

        Returns:
            whether the validation PSNR improved.
        """
        from cliphaze.model import save_checkpoint

        improved = scores is not None and scores["psnr"] > self.best_psnr
        if improved:
            self.best_psnr = scores["psnr"]
        if self.procs.main:
            if improved:
                save_checkpoint(self.payload(with_state=False), self.best_path)
            save_checkpoint(self.payload(with_state=True), self.last_path)
            (self.run_dir / "history.json").write_text(
                json.dumps({k: self.history[k] for k in ("records", "val")}, indent=1))
        if improved:
            self.best_good = (self.best_path, self.step, self.best_psnr)
        self.last_good = (self.last_path, self.step)
        return improved


def _device(name: str) -> torch.device:
    """``config.device`` as a torch device that exists here (else ``ValueError`` saying what to use)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a device name torch knows; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {name}: torch sees no CUDA device on this machine "
                             f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu")
        if device.index is not None and device.index >= count:
            raise ValueError(f"--device {name}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}")
    return device


def _build(config: TrainConfig, network, guide_spec: str, device: torch.device):
    """The model to train: from the preset, a given NetworkConfig, or a given CLIPHaze model."""
    from cliphaze.model import CLIPHaze, NetworkConfig, build_model, get_preset

    torch.manual_seed(config.seed)
    if network is None:
        return build_model(get_preset(config.preset, aggregation=config.aggregation), guide=guide_spec, device=device)
    if isinstance(network, NetworkConfig):
        return build_model(network, guide=guide_spec, device=device)
    if isinstance(network, CLIPHaze):
        return network.to(device)
    raise TypeError(f"network must be a NetworkConfig or a CLIPHaze model, got {type(network).__name__}")


def train(config: TrainConfig, resume: bool = False, stop_at: int | None = None, progress: bool = True,
          callback: Callable[[dict], None] | None = None, log: Callable[[str], None] = print,
          datasets=None, network=None, overwrite: bool = False) -> TrainResult:
    """Run (or resume) a training run described by ``config`` (module docstring: every step).

    Args:
        config: :class:`TrainConfig`.
        resume: continue from ``<out>/last.pt`` when it exists (the fields in
            :data:`cliphaze.train.config.RESUME_MUST_MATCH` and the network must agree with it).
        stop_at: stop after this step (as if the run were killed there, but with ``last.pt``
            written); the schedule still follows ``config.steps``. For tests and lessons.
        progress: show a tqdm bar (loss, PSNR of the batch, images per second).
        callback: called every ``log_every`` steps (and after validation) with the newest history
            record (the lesson's live plot).
        log: where one-line messages go.
        datasets: optional ``(train_dataset, val_pairs)`` to use instead of :func:`build_datasets`.
        network: what to train instead of ``config.preset``: a
            :class:`~cliphaze.model.NetworkConfig` (built with the config's guide and seed) or a
            :class:`~cliphaze.model.CLIPHaze` model (trained as given).
        overwrite: replace a run already in ``<out>`` (its ``last.pt``, ``best.pt``,
            ``history.json``, ``config.json`` and ``prompts.pt`` are removed first).

    Returns:
        :class:`TrainResult`.

    Raises:
        TrainingDiverged: non-finite loss, gradient, parameters or validation score (the last
            good checkpoint is left intact and named).
        RunFolderInUse: ``<out>`` holds a run and neither ``resume`` nor ``overwrite`` was given.
        ValueError: bad config, or a resume whose checkpoint disagrees with the config or was
            trained with other guide files (SHA-256 recorded in the checkpoint).
    """
    from cliphaze.model import guide_fingerprint, load_checkpoint

    if config.threads:
        torch.set_num_threads(int(config.threads))
    device = _device(config.device)
    procs = _processes(device.type)
    if procs.distributed and device.type == "cuda":
        device = torch.device("cuda", procs.local_rank)
        torch.cuda.set_device(device)
    if not procs.main:
        log = lambda message: None  # noqa: E731 - rank 0 speaks for the job
        progress, callback = False, None
    run_dir = Path(config.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"{run_dir}: is a file, not a folder; --out names the run folder (choose another)")
    train_set, val_pairs = datasets if datasets is not None else build_datasets(config)  # fail before writing
    if procs.main:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ValueError(f"{run_dir}: cannot create the run folder ({err.strerror or err}); "
                             "choose another --out") from None
    procs.barrier()
    _check_run_folder(run_dir, resume, overwrite, procs, log)
    last_path = run_dir / "last.pt"

    checkpoint = None
    if resume and last_path.is_file():
        checkpoint = load_checkpoint(last_path)
        saved = TrainConfig.from_dict(checkpoint["train"]["config"])
        differ = [k for k in RESUME_MUST_MATCH if getattr(saved, k) != getattr(config, k)]
        if differ:
            raise ValueError(f"{last_path}: cannot resume, the config differs in {differ} "
                             f"(checkpoint: {[getattr(saved, k) for k in differ]}, now: "
                             f"{[getattr(config, k) for k in differ]}); resume with the same settings, "
                             "or start a new run in another --out folder")
    elif resume:
        log(f"no {last_path} yet: starting a new run")

    guide_spec = config.guide
    from cliphaze.block import aggregation_needs

    if config.prompts == "learn" and aggregation_needs(config.aggregation):
        if procs.main:
            guide_spec = learn_prompts_stage(config, run_dir, log)
        procs.barrier()
        if not procs.main:
            guide_spec = learn_prompts_stage(config, run_dir, log)  # reads rank 0's prompts.pt
    model = _build(config, network, guide_spec, device)
    if checkpoint is not None:
        from cliphaze.model import NetworkConfig

        if NetworkConfig.from_dict(checkpoint["network"]) != model.net.config:
            raise ValueError(f"{last_path}: cannot resume, the network differs from the checkpoint's "
                             f"({checkpoint['network']} there, {model.net.config.to_dict()} now)")
    trainer = Trainer(config, model, run_dir, device, procs, log)
    if checkpoint is not None:
        trainer.restore(checkpoint, last_path)
        log(f"resumed from {last_path} at step {trainer.step}")
    if procs.main:
        config.save(run_dir / "config.json")
    trainer.fingerprint = guide_fingerprint(model.guide_spec) if model.guide is not None else None
    if checkpoint is not None and checkpoint.get("guide") != trainer.fingerprint:
        raise ValueError(f"{last_path}: cannot resume exactly, the CLIP guide changed since the checkpoint was "
                         f"written (checkpoint: {checkpoint.get('guide')}, now: {trainer.fingerprint}); restore the "
                         "guide files or start a new run in another --out folder")

    end = config.steps if stop_at is None else min(stop_at, config.steps)
    loader = make_loader(train_set, config, trainer.step, end, procs.rank, procs.world_size,
                         pin_memory=device.type == "cuda")
    bar = None
    if progress and trainer.step < end:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=trainer.step, desc="training", dynamic_ncols=True)
    start = time.perf_counter()
    window_t, window_n, window_psnr = time.perf_counter(), 0, []
    history = trainer.history
    trainer.net.train()
    for hazy, clear in loader:
        out = trainer.train_step(hazy, clear)
        step = trainer.step
        window_n += hazy.shape[0] * procs.world_size
        window_psnr.append(out["psnr"])
        if step % config.log_every == 0 or step == end:
            now = time.perf_counter()
            recent = history["loss"][-config.log_every:]
            parts = {k: v for k, v in out.items() if k not in ("loss", "psnr")}
            rec = {"step": step, "loss": sum(recent) / len(recent), "psnr": sum(window_psnr) / len(window_psnr),
                   "lr": trainer.scheduler.get_last_lr()[0], "images_per_s": window_n / max(now - window_t, 1e-9),
                   "elapsed_s": now - start, **parts}
            history["records"].append(rec)
            window_t, window_n, window_psnr = now, 0, []
            if bar is not None:
                bar.set_postfix(loss=f"{rec['loss']:.4f}", psnr=f"{rec['psnr']:.2f}", img_s=f"{rec['images_per_s']:.1f}")
            elif progress is False and step % (config.log_every * 5) == 0:
                log(f"step {step}/{config.steps}: loss {rec['loss']:.4f}, batch PSNR {rec['psnr']:.2f} dB, "
                    f"lr {rec['lr']:.2e}, {rec['images_per_s']:.1f} img/s, {rec['elapsed_s']:.0f} s")
            if callback is not None:
                callback(rec)
        if bar is not None:
            bar.update(1)
        if step % config.val_every == 0 or step == end:
            scores = trainer.validate(val_pairs)
            trainer.check_finite(scores)
            if scores is not None:
                val_rec = {"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"]}
                history["val"].append(val_rec)
            improved = trainer.save(scores)
            if scores is not None:
                log(f"step {step}: val PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}"
                    f"{' (best)' if improved else ''}")
                if callback is not None:
                    callback(val_rec)
    if bar is not None:
        bar.close()
    if not val_pairs and trainer.step == config.steps and not trainer.best_path.exists():
        trainer.check_finite(None)
        if procs.main:
            from cliphaze.model import save_checkpoint

            save_checkpoint(trainer.payload(with_state=False), trainer.best_path)
    procs.barrier()
    trainer.net.eval()
    return TrainResult(model=model, history=history, best_psnr=trainer.best_psnr, step=trainer.step,
                       run_dir=run_dir, seconds=time.perf_counter() - start)
