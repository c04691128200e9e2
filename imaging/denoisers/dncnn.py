"""DnCNN-style convolutional denoiser (Zhang et al. 2017), without batch normalisation.

RED-PSM calls the denoiser on every frame in every outer iteration, so its cost sets the
solver's speed. The network is a plain stack of 3x3 convolutions and ReLUs: no batch
normalisation, so that its output for one image does not depend on the other images of
a batch, and "same" padding, so that the output has the input's size.

Two options change what the network can represent at no extra cost per pixel:

- ``bias=False`` (bias-free, Mohan et al. 2020): without additive constants a ReLU
  network is positively homogeneous, ``D(a x) = a D(x)`` for ``a > 0``, so the denoiser
  behaves the same at any intensity scale, maps 0 to 0 exactly, and cannot add a
  constant offset to an image each time it is applied;
- ``dilations``: the dilation of each 3x3 convolution; larger dilations widen the
  receptive field (``1 + 2 * sum(dilations)`` pixels) with the same weights and
  operations, so the network sees the longer streaks of undersampled tomography.
"""

from __future__ import annotations

import torch
from torch import nn


#: Largest dilation of a layer: its zero padding grows with it, so a weights file must
#: not be able to ask for an arbitrary one.
MAX_DILATION = 16


class DnCNN(nn.Module):
    """A DnCNN denoiser for single-channel images.

    Layers: ``Conv3x3(1 -> width) + ReLU``, ``depth - 2`` times
    ``Conv3x3(width -> width) + ReLU``, then ``Conv3x3(width -> 1)``; zero padding equal
    to each layer's dilation, no batch normalisation.

    Parameters
    ----------
    depth : int
        Number of convolution layers, at least 2.
    width : int
        Number of channels of the hidden layers, at least 1.
    residual : bool
        If True the network predicts the noise and the module returns
        ``x - net(x)``; if False it returns ``net(x)`` directly.
    bias : bool
        Whether the convolutions have additive biases (False: bias-free, scale-equivariant).
    dilations : sequence of int, optional
        Dilation of each of the ``depth`` convolutions (default all 1).

    Notes
    -----
    Input and output are float32 tensors of shape ``(B, 1, H, W)``. A network with
    biases expects intensities on the scale it was trained on (the shipped weights:
    object maximum about 1); a bias-free one works at any scale.
    """

    def __init__(self, depth: int = 6, width: int = 32, residual: bool = True, bias: bool = True, dilations=None):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"DnCNN depth must be an integer >= 2, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"DnCNN width must be an integer >= 1, got {width!r}")
        if not isinstance(residual, bool):
            raise ValueError(f"DnCNN residual must be True or False, got {residual!r}")
        if not isinstance(bias, bool):
            raise ValueError(f"DnCNN bias must be True or False, got {bias!r}")
        dilations = [1] * depth if dilations is None else list(dilations)
        if len(dilations) != depth or not all(
            isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DILATION for d in dilations
        ):
            raise ValueError(
                f"DnCNN dilations must be {depth} integers from 1 to {MAX_DILATION} (one per layer), got {dilations!r}"
            )
        self.depth = depth
        self.width = width
        self.residual = residual
        self.bias = bias
        self.dilations = dilations
        channels = [1] + [width] * (depth - 1) + [1]
        layers: list[nn.Module] = []
        for index, dilation in enumerate(dilations):
            layers.append(nn.Conv2d(channels[index], channels[index + 1], 3, padding=dilation, dilation=dilation, bias=bias))
            if index < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def parameter_count(depth: int, width: int, bias: bool = True) -> int:
        """Number of weights (and biases) of a DnCNN of this depth and width (nothing is built)."""
        weights = 9 * width + (depth - 2) * 9 * width * width + 9 * width
        return weights + (width * (depth - 1) + 1 if bias else 0)

    @property
    def architecture(self) -> dict:
        """The constructor arguments, as stored next to the weights in a weights file.

        The default options (biases, no dilation) are left out, so a classic DnCNN has
        the record of earlier versions.
        """
        record = {"depth": self.depth, "width": self.width, "residual": self.residual}
        if not self.bias:
            record["bias"] = False
        if any(d != 1 for d in self.dilations):
            record["dilations"] = list(self.dilations)
        return record

    @property
    def receptive_field(self) -> int:
        """Side length in pixels of the square input region that one output pixel sees."""
        return 1 + 2 * sum(self.dilations)

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
        options = "" if self.bias else ", bias=False"
        if any(d != 1 for d in self.dilations):
            options += f", dilations={self.dilations}"
        return f"depth={self.depth}, width={self.width}, residual={self.residual}{options}"
