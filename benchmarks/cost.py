"""Cost against map size: window attention, SS2D (Mamba path), full attention and the TrambaDA block.

Prints, for square maps of 128^2 to 1024^2 pixels (16 channels, the ``tiny`` preset's first-level
settings: window 8, d_state 8, ssm_ratio 1, four directions; batch 1, forward only, no gradient),
the median time of ``--repeats`` runs after a warm-up and the peak memory each adds (see
:mod:`cliphaze.analysis.cost` for how memory is measured and why the CPU number is a lower
bound), then the fitted growth exponent ``alpha`` of ``time ~ pixels^alpha`` per layer. Full
attention materialises its ``l x l`` scores and is skipped where they alone would exceed
``--max-gb``.

    OMP_NUM_THREADS=1 python benchmarks/cost.py                       # 128..1024, a few minutes
    OMP_NUM_THREADS=1 python benchmarks/cost.py --sizes 64,128,256    # quick

Expect alpha near 1 for window attention, SS2D and the block (linear in pixels) and near 2 for
full attention. On a shared CPU, timings vary by 10-30% between runs: compare orders of magnitude
and slopes, not single cells. Lesson: notebooks/06_evaluation.ipynb, "Figure 6".
"""

from __future__ import annotations

import argparse
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    from cliphaze.analysis.cost import COST_KINDS, cost_table, format_cost_table, growth_exponent

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="128,256,512,1024", help="map sides (default: %(default)s)")
    p.add_argument("--kinds", default=",".join(COST_KINDS), help="layers (default: %(default)s)")
    p.add_argument("--dim", type=int, default=16, help="channels (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per cell (default: %(default)s)")
    p.add_argument("--max-gb", type=float, default=2.0, help="skip full attention above this score size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    kinds = [k.strip() for k in args.kinds.split(",")]
    print(f"device {args.device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}, dim {args.dim}")

    def show(row):
        cell = "skipped" if row.seconds != row.seconds else f"{1e3 * row.seconds:9.1f} ms  {row.peak_mb:8.0f} MB"
        print(f"  {row.kind:>15} {row.side:>5}^2: {cell} {row.note}", flush=True)

    rows = cost_table(sizes, kinds, dim=args.dim, repeats=args.repeats, max_gb=args.max_gb, device=args.device,
                      progress=show)
    print()
    print(format_cost_table(rows))
    print()
    fit_from = sizes[1] if len(sizes) > 2 else 0
    for k in kinds:
        print(f"{k:>15}: time ~ pixels^{growth_exponent(rows, k, min_side=fit_from):.2f} "
              f"(fit on sides >= {fit_from}; memory ~ pixels^{growth_exponent(rows, k, fit_from, 'peak_mb'):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
