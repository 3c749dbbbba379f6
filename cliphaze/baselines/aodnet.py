"""AOD-Net (Li et al., ICCV 2017): the classic five-convolution learned dehazer.

AOD-Net rewrites the scattering model ``I = J t + A (1 - t)`` so that one map ``K`` absorbs both
unknowns::

    J = K(x) * I(x) - K(x) + b,      K = ((I - A) / t + (A - b)) / (I - 1)

and predicts ``K`` with five small convolutions whose inputs are concatenations of earlier
outputs (a tiny multi-scale network: 1x1, 3x3, 5x5, 7x7 kernels)::

    x1 = relu(conv1_1x1(I));          x2 = relu(conv2_3x3(x1))
    x3 = relu(conv3_5x5([x1, x2]));   x4 = relu(conv4_7x7([x2, x3]))
    K  = relu(conv5_3x3([x1, x2, x3, x4]))
    J  = relu(K * I - K + 1)                                              (b = 1)

1,761 parameters. The shipped weights (``cliphaze/assets/aodnet_dehazer.pth``, MIT, see
``AODNET_LICENSE.md`` beside them) were trained on NYU-Depth-v2 synthetic indoor haze. Used in
lesson 06 as the learned baseline.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from cliphaze.paths import ASSETS_DIR

__all__ = ["AODNet", "load_aodnet", "AODNET_WEIGHTS"]

AODNET_WEIGHTS = ASSETS_DIR / "aodnet_dehazer.pth"


class AODNet(nn.Module):
    """The five-layer AOD-Net; parameter names match the public weights (``e_conv1`` ... ``e_conv5``).

    forward: ``(b, 3, h, w)`` hazy in [0, 1] -> ``(b, 3, h, w)`` dehazed (ReLU at the output, as in
    the original; callers clamp to [0, 1] for metrics).
    """

    def __init__(self) -> None:
        super().__init__()
        self.e_conv1 = nn.Conv2d(3, 3, 1, 1, 0, bias=True)
        self.e_conv2 = nn.Conv2d(3, 3, 3, 1, 1, bias=True)
        self.e_conv3 = nn.Conv2d(6, 3, 5, 1, 2, bias=True)
        self.e_conv4 = nn.Conv2d(6, 3, 7, 1, 3, bias=True)
        self.e_conv5 = nn.Conv2d(12, 3, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.relu(self.e_conv1(x))
        x2 = self.relu(self.e_conv2(x1))
        x3 = self.relu(self.e_conv3(torch.cat((x1, x2), 1)))
        x4 = self.relu(self.e_conv4(torch.cat((x2, x3), 1)))
        k = self.relu(self.e_conv5(torch.cat((x1, x2, x3, x4), 1)))
        return self.relu(k * x - k + 1)


def load_aodnet(path: str | Path | None = None, map_location: str | torch.device = "cpu") -> AODNet:
    """AOD-Net with pretrained weights, every key matched (``strict=True``).

    Args:
        path: a state_dict file; default: the shipped ``cliphaze/assets/aodnet_dehazer.pth``.
        map_location: where to load the tensors.

    Returns:
        The network in eval mode.

    Raises:
        FileNotFoundError: the weights file is missing (the message names it).
        RuntimeError: keys or shapes do not match the architecture (from ``load_state_dict``).
    """
    path = Path(path) if path is not None else AODNET_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: AOD-Net weights not found (the package ships them in cliphaze/assets/)")
    from cliphaze.serialization import safe_torch_load

    state = safe_torch_load(path, map_location=map_location, what="AOD-Net weights file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = AODNet()
    net.load_state_dict(state, strict=True)
    return net.eval()
