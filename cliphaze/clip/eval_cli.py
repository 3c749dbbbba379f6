"""``cliphaze clip evaluate``: flags and entry point (the experiment itself lives in
:mod:`cliphaze.analysis.density_eval`). Importing this module does not import torch, so
``cliphaze --help`` stays fast.
"""

from __future__ import annotations

from cliphaze.cli_types import add_threads_arg, fraction, non_negative_int, positive_int

__all__ = ["FAMILY_NAMES", "add_evaluate_args", "evaluate"]

#: The haze families, spelled out so that the parser needs no torch (a test checks that they equal
#: ``cliphaze.haze.HAZE_FAMILIES``).
FAMILY_NAMES = ["ramp", "fields", "room", "real-depth", "fog"]


def add_evaluate_args(p) -> None:
    """Flags of ``cliphaze clip evaluate`` (backbone flags ``--model``/``--pretrained`` excepted)."""
    p.add_argument("--prompts", default=None,
                   help="learned prompt file for the backbone (default: the shipped prompts when the backbone is "
                   "the shipped one, else none)")
    p.add_argument("--test", default=None,
                   help="folder of clear photos never used in training (default: bsds500/test of the development "
                   "data when present)")
    p.add_argument("--families", nargs="+", default=list(FAMILY_NAMES), choices=FAMILY_NAMES,
                   help="haze families to score (default: all)")
    p.add_argument("--rgbd", default="auto",
                   help="folder of real colour + depth pairs for real-depth (default: rgbd-samples of the development "
                   "data when present; scikit-image's motorcycle is always used)")
    p.add_argument("--hazes-per-pair", type=positive_int, default=4, help="haze draws per real pair (default: %(default)s)")
    p.add_argument("--sots", default=None,
                   help="SOTS-style folder with hazy/ and GT/: AUROC of hazy vs clear (default: none)")
    p.add_argument("--limit", type=positive_int, default=50, help="use only the first N test photos (default: %(default)s)")
    p.add_argument("--max-side", type=positive_int, default=256, help="photos are resized to this longer side (default: %(default)s)")
    p.add_argument("--seed", type=non_negative_int, default=1234, help="haze seed (default: %(default)s)")
    p.add_argument("--resolution", type=positive_int, default=32, help="comparison grid side (default: %(default)s)")
    p.add_argument("--threshold", type=fraction, default=0.5, help="dense-haze threshold for the pixel AUROC (default: %(default)s)")
    p.add_argument("--no-dcp", action="store_true",
                   help="skip the dark channel control (its scores depend only on the images; quicker reruns) (default: off)")
    p.add_argument("--no-hand", action="store_true", help="skip the hand-written prompt pair row (default: off)")
    add_threads_arg(p)
    p.add_argument("-o", "--output", default=None, help="write the report as JSON (default: print only)")


def evaluate(args) -> int:
    """Run ``cliphaze clip evaluate`` (:func:`cliphaze.analysis.density_eval.evaluate_command`)."""
    from cliphaze.analysis.density_eval import evaluate_command

    return evaluate_command(args)
