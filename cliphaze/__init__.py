"""cliphaze: CLIPHaze (CLIP-guided Transformer-Mamba dehazing) rebuilt piece by piece.

The package mirrors the lessons in ``notebooks/``:

- :mod:`cliphaze.haze` - scattering model and haze synthesiser (lesson 00)
- :mod:`cliphaze.data` - paired datasets and benchmark layouts (lesson 00)
- :mod:`cliphaze.baselines` - dark channel prior (lesson 00)
- :mod:`cliphaze.metrics` - PSNR / SSIM (lesson 00)
"""

__version__ = "0.1.0"


def load_model(name_or_path=None, device="cpu"):
    """Load a trained CLIPHaze model (lesson 05); see :func:`cliphaze.model.load_model`.

    Imported lazily so that ``import cliphaze`` stays fast.
    """
    from cliphaze.defaults import SHIPPED_MODEL
    from cliphaze.model import load_model as _load_model

    return _load_model(SHIPPED_MODEL if name_or_path is None else name_or_path, device=device)
