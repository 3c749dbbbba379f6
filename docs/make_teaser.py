"""Regenerate ``docs/figures/teaser.jpg``, the README's figure, from the shipped model.

Rows: bundled samples (a SOTS-indoor scene and a hazed scikit-image photo). Columns: hazy input,
the CLIP haze-density map the model is guided by, the model's output, the ground truth.

Run from the repository root: ``python docs/make_teaser.py``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import cliphaze  # noqa: E402
from cliphaze.io import read_image  # noqa: E402
from cliphaze.metrics import psnr  # noqa: E402
from cliphaze.paths import samples_dir  # noqa: E402

SAMPLES = ["coffee.png", "sots_1419_10.png"]
OUT = Path(__file__).resolve().parent / "figures" / "teaser.jpg"


def main() -> None:
    torch.set_num_threads(1)
    model = cliphaze.load_model()
    fig, axes = plt.subplots(len(SAMPLES), 4, figsize=(11, 2.1 * len(SAMPLES) + 0.3))
    for row, name in zip(axes, SAMPLES):
        hazy = read_image(samples_dir() / "hazy" / name)
        gt = read_image(samples_dir() / "GT" / name)
        out, density = model.dehaze(hazy, return_density=True)
        panels = [
            (hazy, f"hazy ({psnr(hazy, gt).item():.1f} dB)"),
            (density, "CLIP haze density"),
            (out, f"cliphaze-tiny ({psnr(out, gt).item():.1f} dB)"),
            (gt, "ground truth"),
        ]
        for ax, (img, title) in zip(row, panels):
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="inferno", vmin=0, vmax=1)
            else:
                ax.imshow(img.permute(1, 2, 0).clamp(0, 1).numpy())
            ax.set_title(title, fontsize=10)
            ax.axis("off")
    plt.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=80, pil_kwargs={"quality": 85})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
