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

``members`` makes one module of an ensemble: ``members`` independently trained networks
of the same shape side by side as grouped convolutions, whose outputs are averaged. A
mean of networks trained with different seeds has a smaller variance than each of them
(the tuning runs in ``benchmarks/results/tune_red_psm.md``, section 13); it costs at least
``members`` times one network (the members run one after another inside one call).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


#: Largest dilation of a layer: its zero padding grows with it, so a weights file must
#: not be able to ask for an arbitrary one.
MAX_DILATION = 16
#: Most networks in one ensemble module (each one adds a network's cost to every call).
MAX_MEMBERS = 8


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
    members : int
        Number of networks of this shape whose outputs are averaged, stored side by side
        as grouped convolutions (``members * width`` hidden channels; member ``m`` owns
        group ``m`` of every layer); 1 (default) is a single DnCNN. :func:`ensemble` builds
        one from trained networks.

    Notes
    -----
    Input and output are float32 tensors of shape ``(B, 1, H, W)``. A network with
    biases expects intensities on the scale it was trained on (the shipped weights:
    object maximum about 1); a bias-free one works at any scale.
    """

    def __init__(self, depth: int = 6, width: int = 32, residual: bool = True, bias: bool = True, dilations=None,
                 members: int = 1):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
            raise ValueError(f"DnCNN depth must be an integer >= 2, got {depth!r}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"DnCNN width must be an integer >= 1, got {width!r}")
        if not isinstance(residual, bool):
            raise ValueError(f"DnCNN residual must be True or False, got {residual!r}")
        if not isinstance(bias, bool):
            raise ValueError(f"DnCNN bias must be True or False, got {bias!r}")
        if isinstance(members, bool) or not isinstance(members, int) or not 1 <= members <= MAX_MEMBERS:
            raise ValueError(f"DnCNN members must be an integer from 1 to {MAX_MEMBERS}, got {members!r}")
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
        self.members = members
        # Member m owns channels [m * width, (m + 1) * width) of every hidden layer and output
        # channel m; grouped convolutions keep the members apart (the first layer reads the one
        # input channel, so it needs no groups).
        channels = [1] + [members * width] * (depth - 1) + [members]
        layers: list[nn.Module] = []
        for index, dilation in enumerate(dilations):
            layers.append(nn.Conv2d(channels[index], channels[index + 1], 3, padding=dilation, dilation=dilation,
                                    bias=bias, groups=1 if index == 0 else members))
            if index < depth - 1:
                layers.append(nn.ReLU(inplace=True))
        self.net = nn.Sequential(*layers)

    @staticmethod
    def parameter_count(depth: int, width: int, bias: bool = True, members: int = 1) -> int:
        """Number of weights (and biases) of a DnCNN of this depth and width (nothing is built)."""
        weights = 9 * width + (depth - 2) * 9 * width * width + 9 * width
        return members * (weights + (width * (depth - 1) + 1 if bias else 0))

    @property
    def architecture(self) -> dict:
        """The constructor arguments, as stored next to the weights in a weights file.

        The default options (biases, no dilation, one member) are left out, so a classic
        DnCNN has the record of earlier versions.
        """
        record = {"depth": self.depth, "width": self.width, "residual": self.residual}
        if not self.bias:
            record["bias"] = False
        if any(d != 1 for d in self.dilations):
            record["dilations"] = list(self.dilations)
        if self.members != 1:
            record["members"] = self.members
        return record

    @property
    def activation_width(self) -> int:
        """Channels of the widest activation alive during :meth:`forward`: one member's
        width, since the members run one after another (the memory model reads this)."""
        return self.width

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
        if self.members == 1:
            out = self.net(x)
        else:
            # Accumulated in float32: under bfloat16 autocast each member's output is bfloat16.
            out = sum(self._member_output(x, member).float() for member in range(self.members)) / self.members
        return x - out if self.residual else out

    def _member_output(self, x: torch.Tensor, member: int) -> torch.Tensor:
        """One member's network output, ``(B, 1, H, W)``, from its slices of the grouped weights.

        The members run one after another rather than as the grouped convolutions of
        ``self.net``: the CPU kernels run three narrow networks faster than one grouped wide
        one (8.3 against 10.8 ms per 128 x 128 frame, three members, two threads, bfloat16).
        """
        convs = [layer for layer in self.net if isinstance(layer, nn.Conv2d)]
        for index, conv in enumerate(convs):
            last = index == len(convs) - 1
            rows = slice(member, member + 1) if last else slice(member * self.width, (member + 1) * self.width)
            bias = None if conv.bias is None else conv.bias[rows]
            x = F.conv2d(x, conv.weight[rows], bias, padding=conv.padding, dilation=conv.dilation)
            if not last:
                x = F.relu(x, inplace=True)
        return x

    def extra_repr(self) -> str:
        options = "" if self.bias else ", bias=False"
        if any(d != 1 for d in self.dilations):
            options += f", dilations={self.dilations}"
        if self.members != 1:
            options += f", members={self.members}"
        return f"depth={self.depth}, width={self.width}, residual={self.residual}{options}"


def ensemble(networks) -> DnCNN:
    """One DnCNN that returns the mean of the outputs of several trained DnCNNs.

    Parameters
    ----------
    networks : sequence of DnCNN
        At least one single-member network; all of the same depth, width, residual,
        bias and dilations.

    Returns
    -------
    DnCNN
        A network with ``members = len(networks)`` on the CPU, in eval mode, whose
        output for ``x`` of shape ``(B, 1, H, W)`` equals ``mean(net(x) for net in
        networks)`` up to rounding. The networks are not modified.
    """
    networks = list(networks)
    if not networks or not all(isinstance(net, DnCNN) for net in networks):
        raise ValueError("ensemble needs one or more DnCNN networks")
    if any(net.members != 1 for net in networks):
        raise ValueError("ensemble takes single networks; an ensemble is not a member")
    shapes = {(net.depth, net.width, net.residual, net.bias, tuple(net.dilations)) for net in networks}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members must share one architecture, got {[net.architecture for net in networks]}")
    first = networks[0]
    combined = DnCNN(first.depth, first.width, first.residual, bias=first.bias, dilations=first.dilations,
                     members=len(networks))
    # Stacking each layer's weights (and biases) along the output channels gives the grouped
    # layout: member m's filters become group m.
    state = {name: torch.cat([net.state_dict()[name].detach().cpu() for net in networks])
             for name in first.state_dict()}
    combined.load_state_dict(state)
    return combined.eval()
