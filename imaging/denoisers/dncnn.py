"""DnCNN-style convolutional denoiser (Zhang et al. 2017), without batch normalisation.

RED-PSM calls the denoiser on every frame in every outer iteration, so its cost sets the
solver's speed. The network is a plain stack of 3x3 convolutions with biases and ReLUs:
no batch normalisation, so that its output for one image does not depend on the other
images of a batch, and a 3x3 "same" padding, so that the output has the input's size.
"""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    """A DnCNN denoiser for single-channel images.

    Layers: ``Conv3x3(1 -> width) + ReLU``, ``depth - 2`` times
    ``Conv3x3(width -> width) + ReLU``, then ``Conv3x3(width -> 1)``; zero padding 1,
    biases, no batch normalisation.

    Parameters
    ----------
    depth : int
        Number of convolution layers, at least 2.
    width : int
        Number of channels of the hidden layers, at least 1.
    residual : bool
        If True the network predicts the noise and the module returns
        ``x - net(x)``; if False it returns ``net(x)`` directly.

    Notes
    -----
    Input and output are float32 tensors of shape ``(B, 1, H, W)``. Intensities are
    expected on the scale the weights were trained on: the shipped weights assume
    images whose object maximum is about 1.
    """

    def __init__(self, depth: int = 6, width: int = 32, residual: bool = True):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"DnCNN depth must be an integer >= 2, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"DnCNN width must be an integer >= 1, got {width!r}")
        if not isinstance(residual, bool):
            raise ValueError(f"DnCNN residual must be True or False, got {residual!r}")
        self.depth = depth
        self.width = width
        self.residual = residual
        layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, 1, 3, padding=1))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def parameter_count(depth: int, width: int) -> int:
        """Number of weights and biases of a DnCNN of this depth and width (nothing is built)."""
        first_and_last = (9 * width + width) + (9 * width + 1)
        return first_and_last + (depth - 2) * (9 * width * width + width)

    @property
    def architecture(self) -> dict:
        """The constructor arguments, as stored next to the weights in a weights file."""
        return {"depth": self.depth, "width": self.width, "residual": self.residual}

    @property
    def receptive_field(self) -> int:
        """Side length in pixels of the square input region that one output pixel sees."""
        return 2 * self.depth + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise a batch of images.

        Parameters
        ----------
        x : torch.Tensor
            Float tensor of shape ``(B, 1, H, W)``.

        Returns
        -------
        torch.Tensor
            Denoised images, same shape and dtype as ``x``.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"DnCNN expects a tensor of shape (B, 1, H, W), got {tuple(x.shape)}")
        out = self.net(x)
        return x - out if self.residual else out

    def extra_repr(self) -> str:
        return f"depth={self.depth}, width={self.width}, residual={self.residual}"
