"""Regenerate ``data/samples/``: the few demo images the project ships.

- ``sots_<scene>_<level>``: three hazy/GT pairs from the RESIDE SOTS-indoor test set (real depth,
  synthetic homogeneous haze), copied from the development subset in ``../shared/data`` with the
  GT named like its hazy image (RESIDE: research and education use, cite Li et al., TIP 2019; the
  project ships at most this handful and never trains on them).
- ``rocket`` (public domain, SpaceX) and ``coffee`` (CC0, Rachel Michetti), both shipped inside
  scikit-image, hazed here with :func:`cliphaze.haze.synthesize_haze` (fixed seeds), with their
  true transmission maps.

Run from the repository root: ``python data/make_samples.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch

from cliphaze.haze import synthesize_haze
from cliphaze.io import read_image, save_image, to_tensor
from cliphaze.paths import shared_data_dir

OUT = Path(__file__).resolve().parent / "samples"
SOTS_PICKS = ["1400_1", "1405_5", "1419_10"]


def main() -> int:
    import skimage.data

    for sub in ("hazy", "GT", "transmission"):
        (OUT / sub).mkdir(parents=True, exist_ok=True)
    params = {}
    shots = {
        "rocket": (skimage.data.rocket(), "homogeneous", 1),
        "coffee": (skimage.data.coffee(), "nonhomogeneous", 2),
    }
    for name, (array, kind, seed) in shots.items():
        clear = to_tensor(array)
        s = synthesize_haze(clear, kind=kind, beta=1.6, seed=seed)
        save_image(s.hazy[0], OUT / "hazy" / f"{name}.png")
        save_image(s.clear[0], OUT / "GT" / f"{name}.png")
        save_image(s.transmission[0], OUT / "transmission" / f"{name}.png")
        params[f"{name}.png"] = s.describe(0)
    shared = shared_data_dir()
    if shared is None:
        print("../shared/data not found: SOTS samples not refreshed", file=sys.stderr)
    else:
        sots = shared / "sots-indoor-dev"
        for pick in SOTS_PICKS:
            scene = pick.split("_")[0]
            shutil.copyfile(sots / "hazy" / f"{pick}.png", OUT / "hazy" / f"sots_{pick}.png")
            gt = read_image(sots / "GT" / f"{scene}.png")
            hz = read_image(sots / "hazy" / f"{pick}.png")
            if gt.shape != hz.shape:  # SOTS GT carries a 10 px border in the original release
                dh, dw = (gt.shape[1] - hz.shape[1]) // 2, (gt.shape[2] - hz.shape[2]) // 2
                gt = gt[:, dh : dh + hz.shape[1], dw : dw + hz.shape[2]]
            save_image(gt, OUT / "GT" / f"sots_{pick}.png")
    (OUT / "synthetic_params.json").write_text(json.dumps(params, indent=2) + "\n")
    print(f"samples written to {OUT}")
    return 0


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(main())
