"""Training losses of the dehazing network.

``L = l1_weight * |J - J*|_1 + ssim_weight * (1 - SSIM(J, J*)) + freq_weight * |F(J) - F(J*)|_1``

- L1 (mean absolute error) is the loss of DehazeFormer and most recent dehazing networks: it is
  robust and does not over-smooth like L2.
- ``1 - SSIM`` (``pytorch_msssim``, 11x11 Gaussian window, data range 1) rewards local contrast
  and structure, what haze removes; optional.
- The frequency loss compares 2-D real FFTs (real and imaginary parts, mean absolute difference)
  as in FSNet / ConvIR (orthonormal FFT, so the scale does not grow with the image size); it pushes high frequencies (edges, textures) that L1 under-weights; optional.

Lesson: ``notebooks/05_full_training.ipynb``, section "The loss".
"""

from __future__ import annotations

import torch

__all__ = ["l1_loss", "ssim_loss", "frequency_loss", "DehazeLoss"]


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements. Args: ``(b, 3, h, w)`` each. Returns: scalar."""
    return (pred - target).abs().mean()


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - SSIM`` averaged over the batch (``pytorch_msssim``; sides >= 11 pixels). Returns: scalar."""
    from pytorch_msssim import ssim

    return 1.0 - ssim(pred.float(), target.float(), data_range=1.0, size_average=True)


def frequency_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``mean |rfft2(pred) - rfft2(target)|`` over real and imaginary parts. Returns: scalar."""
    fp = torch.view_as_real(torch.fft.rfft2(pred.float(), norm="ortho"))
    ft = torch.view_as_real(torch.fft.rfft2(target.float(), norm="ortho"))
    return (fp - ft).abs().mean()


class DehazeLoss:
    """The weighted sum in the module docstring.

    Args:
        l1_weight, ssim_weight, freq_weight: non-negative weights (zero terms are not computed).

    Call: ``loss(pred (b, 3, h, w), target (b, 3, h, w)) -> (total scalar, {term: float})``.
    """

    def __init__(self, l1_weight: float = 1.0, ssim_weight: float = 0.0, freq_weight: float = 0.0):
        self.weights = {"l1": l1_weight, "ssim": ssim_weight, "freq": freq_weight}
        self.terms = {"l1": l1_loss, "ssim": ssim_loss, "freq": frequency_loss}

    def __call__(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        total = pred.new_zeros((), dtype=torch.float32)
        parts = {}
        for name, weight in self.weights.items():
            if weight > 0:
                value = self.terms[name](pred, target)
                total = total + weight * value
                parts[name] = float(value.detach())
        return total, parts
