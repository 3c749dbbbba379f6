"""cliphaze: CLIPHaze (CLIP-guided Transformer-Mamba dehazing) rebuilt piece by piece.

The package mirrors the lessons in ``notebooks/``:

- :mod:`cliphaze.haze` - scattering model and haze synthesiser (lesson 00)
- :mod:`cliphaze.data` - paired datasets and benchmark layouts (lesson 00)
- :mod:`cliphaze.baselines` - dark channel prior (lesson 00)
- :mod:`cliphaze.metrics` - PSNR / SSIM (lesson 00)
"""

__version__ = "0.1.0"
