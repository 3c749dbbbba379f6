"""Training CLIPHaze: stage 1 (prompts) and stage 2 (the dehazing network with CLIP frozen).

Stage 1 (lesson 02) learns the hazy/clear prompt pair with the CLIP encoders frozen; by default a
run reuses the pair shipped with the guide (``prompts="shipped"``), or learns a new one on its own
training photos (``prompts="learn"``). Stage 2 trains the network with guide and prompts frozen:

- *Data.* Synthetic haze over folders of clear photos, made on the fly
  (:class:`cliphaze.data.SyntheticHazeDataset`), or the train split of a paired benchmark
  (:func:`cliphaze.data.open_benchmark`). The sample order is a pure function of the step:
  sample ``k = step * batch + j`` is item ``perm_e[k mod N]`` of epoch ``e = k // N``, with the
  permutation and every crop/haze draw seeded by ``(seed, epoch, index)``. Resuming therefore needs
  no data state at all and replays exactly the same batches.
- *Optimisation.* AdamW; learning rate ``lr * s / warmup`` during warm-up, then cosine decay
  ``lr (r + (1 - r) (1 + cos(pi p)) / 2)`` with progress ``p`` from 0 to 1 and floor ``r`` =
  ``min_lr_ratio``; global gradient-norm clipping; on CUDA, bfloat16 autocast and channels-last.
- *Loss.* :class:`cliphaze.train.losses.DehazeLoss`.
- *Bookkeeping.* Every ``val_every`` steps: validation PSNR/SSIM, then ``last.pt`` (model,
  optimizer, scheduler, RNG states, step, history, config) and, when validation PSNR improves,
  ``best.pt``; both written atomically (:func:`cliphaze.model.save_checkpoint`). A killed run loses
  at most ``val_every`` steps; ``resume=True`` continues from ``last.pt`` exactly (same parameters,
  bit for bit on CPU, as a run that was never interrupted).
- *Divergence.* A NaN or infinite loss or gradient norm stops the run with
  :class:`TrainingDiverged`, before the optimizer step, without writing any checkpoint: the last
  good ``last.pt`` stays intact.

Lesson: ``notebooks/05_full_training.ipynb``, section "Training".
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import torch

from cliphaze.train.config import RESUME_MUST_MATCH, TrainConfig
from cliphaze.train.losses import DehazeLoss

__all__ = ["TrainingDiverged", "train", "lr_factor", "batch_indices", "TrainResult", "build_datasets", "evaluate_pairs",
           "learn_prompts_stage"]


class TrainingDiverged(RuntimeError):
    """The loss (or gradient norm) became NaN or infinite; the message says when and what is intact."""


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
        batch_size: items per batch.
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


def _collect_images(sources: list[str]) -> list[Path]:
    from cliphaze.data import list_images_recursive

    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: training data folder does not exist")
        found = list_images_recursive(p)
        if not found:
            raise ValueError(f"{p}: no image files found")
        files.extend(found)
    return files


def build_datasets(config: TrainConfig):
    """The training dataset and the validation images of ``config``.

    Returns:
        ``(train_dataset, val_pairs)`` where ``val_pairs`` is a list of ``(hazy (3, h, w), clear
        (3, h, w))`` fixed for the whole run (empty without ``val_data``).
    """
    from cliphaze.data import SyntheticHazeDataset, open_benchmark

    if not config.data:
        raise ValueError("no training data: give one or more folders (--data)")
    if config.data_kind == "synthetic":
        train_set = SyntheticHazeDataset(_collect_images(config.data), crop=config.crop, kind=config.haze_kind,
                                         seed=config.seed)
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
                                           validate=False)
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


def _get_batch(dataset, step: int, config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    hazy, clear = [], []
    for epoch, index in batch_indices(step, config.batch_size, len(dataset), config.seed):
        if getattr(dataset, "epoch", None) != epoch and hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        item = dataset[index]
        hazy.append(item["hazy"])
        clear.append(item["clear"])
    return torch.stack(hazy), torch.stack(clear)


def learn_prompts_stage(config: TrainConfig, run_dir: Path, log: Callable[[str], None] = print) -> str:
    """Stage 1: learn a prompt pair on the training photos and return the guide spec using it.

    Returns:
        ``"<guide>@<run_dir>/prompts.pt"`` (the file is reused when it exists).
    """
    from cliphaze.clip import load_clip, save_prompts
    from cliphaze.clip.prompts import PromptLearnerConfig, train_prompts
    from cliphaze.io import read_image

    path = run_dir / "prompts.pt"
    base = config.guide.split("@")[0]
    if not path.is_file():
        clip = load_clip() if base == "haze-clip-small" else load_clip(base, pretrained="random")
        photos = [read_image(p) for p in _collect_images(config.data)[:200]]
        log(f"stage 1: learning prompts on {len(photos)} photos")
        learner, history = train_prompts(clip, photos, PromptLearnerConfig(seed=config.seed))
        save_prompts(learner, path, extra={"final_loss": history["loss"][-1]})
        log(f"stage 1: final loss {history['loss'][-1]:.4f}, saved {path}")
    return f"{base}@{path.resolve()}"


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
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


def train(config: TrainConfig, resume: bool = False, stop_at: int | None = None, progress: bool = True,
          callback: Callable[[dict], None] | None = None, log: Callable[[str], None] = print,
          datasets=None) -> TrainResult:
    """Run (or resume) a training run described by ``config`` (module docstring: every step).

    Args:
        config: :class:`TrainConfig`.
        resume: continue from ``<out>/last.pt`` when it exists (the fields in
            :data:`cliphaze.train.config.RESUME_MUST_MATCH` must agree with it).
        stop_at: stop after this step (as if the run were killed there, but with ``last.pt``
            written); the schedule still follows ``config.steps``. For tests and lessons.
        progress: show a tqdm bar (loss, PSNR of the batch, images per second).
        callback: called every ``log_every`` steps (and after validation) with the newest history
            record (the lesson's live plot).
        log: where one-line messages go.
        datasets: optional ``(train_dataset, val_pairs)`` to use instead of :func:`build_datasets`.

    Returns:
        :class:`TrainResult`.

    Raises:
        TrainingDiverged: NaN/inf loss or gradient (the last good checkpoint is left intact).
        ValueError: bad config, or a resume whose checkpoint disagrees with the config or was
            trained with other guide files (SHA-256 recorded in the checkpoint).
    """
    from cliphaze.metrics import psnr
    from cliphaze.model import (
        build_model,
        get_preset,
        guide_fingerprint,
        load_checkpoint,
        save_checkpoint,
    )

    if config.threads:
        torch.set_num_threads(int(config.threads))
    device = torch.device(config.device)
    on_cuda = device.type == "cuda"
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"

    checkpoint = None
    if resume and last_path.is_file():
        checkpoint = load_checkpoint(last_path)
        saved = TrainConfig.from_dict(checkpoint["train"]["config"])
        differ = [k for k in RESUME_MUST_MATCH if getattr(saved, k) != getattr(config, k)]
        if differ:
            raise ValueError(f"{last_path}: cannot resume, the config differs in {differ} "
                             f"(checkpoint: {[getattr(saved, k) for k in differ]}, now: "
                             f"{[getattr(config, k) for k in differ]})")
    elif resume:
        log(f"no {last_path} yet: starting a new run")

    guide_spec = config.guide
    if config.prompts == "learn" and config.guidance != "none":
        guide_spec = learn_prompts_stage(config, run_dir, log)
    torch.manual_seed(config.seed)
    net_cfg = get_preset(config.preset, guidance=config.guidance)
    model = build_model(net_cfg, guide=guide_spec, device=device)
    net = model.net
    if on_cuda:
        net = net.to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, config.warmup_steps, config.steps, config.min_lr_ratio))
    loss_fn = DehazeLoss(config.l1_weight, config.ssim_weight, config.freq_weight)
    train_set, val_pairs = datasets if datasets is not None else build_datasets(config)

    step, best_psnr = 0, -math.inf
    history: dict = {"loss": [], "records": [], "val": []}
    if checkpoint is not None:
        net.load_state_dict(checkpoint["state_dict"])
        state = checkpoint["train"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        step, best_psnr, history = state["step"], state["best_psnr"], state["history"]
        log(f"resumed from {last_path} at step {step}")
    config.save(run_dir / "config.json")
    fingerprint = guide_fingerprint(guide_spec) if model.guide is not None else None
    if checkpoint is not None and checkpoint.get("guide") != fingerprint:
        raise ValueError(f"{last_path}: cannot resume exactly, the CLIP guide changed since the checkpoint was "
                         f"written (checkpoint: {checkpoint.get('guide')}, now: {fingerprint}); restore the guide "
                         "files or start a new run in another --out folder")

    def payload(with_state: bool) -> dict:
        p = {"network": net_cfg.to_dict(), "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
             "guide": fingerprint, "meta": {"step": step, "best_val_psnr": best_psnr, "guide_side": model.guide_side,
                                            "train_config": config.to_dict()}}
        if with_state:
            p["train"] = {"config": config.to_dict(), "step": step, "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "rng": _rng_state(), "best_psnr": best_psnr,
                          "history": history}
        return p

    end = config.steps if stop_at is None else min(stop_at, config.steps)
    bar = None
    if progress and step < end:
        from tqdm.auto import tqdm

        bar = tqdm(total=end, initial=step, desc="training", dynamic_ncols=True)
    start = time.perf_counter()
    window_t, window_n, window_psnr = time.perf_counter(), 0, []
    autocast_dtype = torch.bfloat16 if on_cuda and torch.cuda.is_bf16_supported() else torch.float16
    net.train()
    while step < end:
        hazy, clear = _get_batch(train_set, step, config)
        hazy, clear = hazy.to(device, non_blocking=True), clear.to(device, non_blocking=True)
        if on_cuda:
            hazy, clear = hazy.contiguous(memory_format=torch.channels_last), clear.contiguous(memory_format=torch.channels_last)
        guidance = model.guidance(hazy)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=on_cuda):
            pred = net(hazy, **guidance)
        loss, parts = loss_fn(pred.float(), clear)
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {step + 1} (terms {parts}); stopped before the update. "
                f"The last good checkpoint is {last_path if last_path.is_file() else '(none written yet)'}"
                f"{' at step ' + str(load_checkpoint(last_path)['train']['step']) if last_path.is_file() else ''}. "
                "Lower --lr, raise --warmup-steps or check the data for broken images.")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
        if not torch.isfinite(grad_norm):
            raise TrainingDiverged(f"gradient norm became {float(grad_norm)} at step {step + 1}; stopped before the "
                                   f"update. Last good checkpoint: {last_path if last_path.is_file() else '(none yet)'}")
        optimizer.step()
        scheduler.step()
        step += 1
        history["loss"].append(loss.item())
        window_n += hazy.shape[0]
        window_psnr.append(float(psnr(pred.detach().clamp(0, 1).float(), clear).mean()))
        if step % config.log_every == 0 or step == end:
            now = time.perf_counter()
            rec = {"step": step, "loss": sum(history["loss"][-config.log_every:]) / len(history["loss"][-config.log_every:]),
                   "psnr": sum(window_psnr) / len(window_psnr), "lr": scheduler.get_last_lr()[0],
                   "images_per_s": window_n / max(now - window_t, 1e-9), "elapsed_s": now - start, **parts}
            history["records"].append(rec)
            window_t, window_n, window_psnr = now, 0, []
            if bar is not None:
                bar.set_postfix(loss=f"{rec['loss']:.4f}", psnr=f"{rec['psnr']:.2f}", img_s=f"{rec['images_per_s']:.1f}")
            elif progress is False and log is not None and step % (config.log_every * 5) == 0:
                log(f"step {step}/{config.steps}: loss {rec['loss']:.4f}, batch PSNR {rec['psnr']:.2f} dB, "
                    f"lr {rec['lr']:.2e}, {rec['images_per_s']:.1f} img/s, {rec['elapsed_s']:.0f} s")
            if callback is not None:
                callback(rec)
        if bar is not None:
            bar.update(1)
        if step % config.val_every == 0 or step == end:
            if val_pairs:
                scores = evaluate_pairs(model, val_pairs, device)
                val_rec = {"step": step, "val_psnr": scores["psnr"], "val_ssim": scores["ssim"]}
                history["val"].append(val_rec)
                improved = scores["psnr"] > best_psnr
                if improved:
                    best_psnr = scores["psnr"]
                    save_checkpoint(payload(with_state=False), best_path)
                log(f"step {step}: val PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f}"
                    f"{' (best)' if improved else ''}")
                if callback is not None:
                    callback(val_rec)
            save_checkpoint(payload(with_state=True), last_path)
            (run_dir / "history.json").write_text(json.dumps({k: history[k] for k in ("records", "val")}, indent=1))
    if bar is not None:
        bar.close()
    if not val_pairs and step == config.steps and not best_path.exists():
        save_checkpoint(payload(with_state=False), best_path)
    net.eval()
    return TrainResult(model=model, history=history, best_psnr=best_psnr, step=step, run_dir=run_dir,
                       seconds=time.perf_counter() - start)

