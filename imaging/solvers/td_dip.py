"""The TD-DIP baseline ("td-dip"): time-dependent deep image prior (Yoo et al., IEEE TMI 2021).

Every frame ``p`` is the output of one convolutional generator fed with a fixed point of
a low-dimensional temporal manifold, a helix::

    z_p = (cos 2 pi c tau_p, sin 2 pi c tau_p, tau_p),   tau = linspace(0, 1, P)

(``c`` = ``num_cycle``). A mapping network ``Linear(3, 512) - ReLU - Linear(512, 64)``
turns ``z_p`` into an 8 x 8 input image; the generator is ``Conv3x3(1 -> ch) + norm +
ReLU``, ``Conv3x3(ch -> ch) + norm + ReLU``, then stages of ``[nearest upsample x2,
2 x (Conv3x3(ch -> ch) + norm + ReLU)]`` up to the image size and a final
``Conv3x3(ch -> 1)``; convolutions have no bias and there is no output activation. The
weights of both networks (not the latents) are fitted to the measurements of all frames
by Adam on the mean squared error in the measurement domain, a mini-batch of frames per
optimiser step, with the step learning-rate schedule of the published code. This is the
published "basicnet" with the "helix+mapping" input.

Adaptation to this toolkit, and what differs from the published code (jaejun-yoo/TDDIP):

- Forward model: the per-frame operator of the measurements (the projection of the
  frame's views for tomography, the frame's k-t mask, coils and FFT for MRI) replaces the
  multi-coil radial NUFFT. Tomography builds one operator per frame once (the same ASTRA
  weights, and the same build time, as the all-frame operator) and applies the batch's
  operators; MRI builds the batch's operator from its masks at each step (cheap).
- Images are real, as our operators' default, so the generator has one output channel
  (the published two channels hold the real and imaginary parts of complex images).
- Normalisation layers: the published BatchNorm, in training mode throughout (its code
  never switches to evaluation) and with its batch of one frame, normalises every frame
  by that frame's own statistics. We keep exactly that arithmetic for any mini-batch by
  normalising each frame separately (``GroupNorm`` with one group per channel, affine per
  channel). A frame's output thus does not depend on the other frames of its batch, a
  mini-batch is the average of single-frame steps, and :meth:`TDDIP.estimate` is the same
  however the frames are grouped.
- The mapping network runs at every step and is trained jointly with the generator, as
  the paper describes (the published script evaluates it once, when it is built).
- Frames are drawn as mini-batches of ``batch_frames`` from a reshuffled order of all
  frames (each frame once per pass; the last batch of a pass may be smaller) instead of
  one uniformly random frame per step, so a short budget still visits every frame.
- Scale: the data are divided by ``alpha = ||g|| / ||A 1||``, the amplitude of the
  constant image whose data have the energy of ``g``; the network therefore produces an
  image of order one at any data amplitude, and :meth:`TDDIP.estimate` multiplies by
  ``alpha`` again. The loss is the batch's mean squared residual divided by the mean
  square of all (normalised) data (the published code multiplies the MSE by N^2 instead;
  Adam's steps do not depend on a constant factor of the loss).
- Image sizes that are not ``8 * 2^k``: the generator makes the next such size up and the
  centre ``H x W`` is kept (cropping keeps the published pixel grid and receptive fields).
- Tomography: pixels outside the field of view that the operator sees (its support mask)
  are unconstrained by the data and are set to zero in the estimate.
- Budget: the published 10,000 single-frame steps are the "paper" preset. The default
  keeps the published network, optimiser, batch of one frame and schedule shape and cuts
  the budget to :data:`DEFAULT_STEPS` steps, a few minutes on a 2-core CPU at N=128,
  P=256. The learning rate is halved every ``lr_decay_every`` steps, by default every
  fifth of the budget (the published 2000 of 10,000).
- The "light" preset narrows the generator to 32 channels (about a tenth of the cost of
  a step) and takes 4096 steps in less CPU time than the default. On the walnut (N=128,
  P=256, one view per frame, noise 5e-3) it reached 22.2 dB volume PSNR in 240 CPU-s,
  the default 14.7 dB in 320 CPU-s: in a few minutes of CPU the published width only
  gets as far as a blurred outline.

No ground truth is used: the run stops after its fixed step budget.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from .._deprecation import moved_attribute
from .registry import register
from .base import ParameterError, Solver, SolverParams, image_array, param

#: Side of the generator's first feature map (the mapping network's 64 outputs as 8 x 8).
BASE_SIZE = 8
#: Width of the mapping network's hidden layer (published).
MAPPING_WIDTH = 512
#: Learning-rate factor applied every ``lr_decay_every`` steps (published StepLR gamma).
LR_DECAY_FACTOR = 0.5
#: Frames generated at once by :meth:`TDDIP.estimate` (bounds its memory, not its result).
ESTIMATE_CHUNK = 8
#: Peak bytes per activation of the generator in training (with its gradient and the
#: layers' temporaries), per channel, frame of a batch and pixel: measured 150 at the
#: default 128 channels, N = 64 and 128 (benchmarks/memory_model.py).
ACTIVATION_BYTES = 150

#: Default optimiser-step budget, sized for a few minutes on the 2-core CPU at N=128,
#: P=256 (RED-PSM's budget): one step of the published network (128 channels, one
#: 128 x 128 frame) costs 0.72 CPU-seconds and generating a frame 0.24 CPU-s, so 384
#: steps plus the P=256 frames of the estimate take about 320 CPU-s (3 to 5.5 minutes on
#: two cores, depending on how well the second one helps under load). The published
#: 10,000 steps would take about 2 hours of CPU time.
DEFAULT_STEPS = 384
DEFAULT_BATCH_FRAMES = 1
#: Four outer iterations: each one that the runner scores against a ground truth costs
#: a generation of all P frames (about 60 CPU-s at P=256).
DEFAULT_STEPS_PER_ITERATION = 96


@dataclasses.dataclass
class TDDIPParams(SolverParams):
    """Parameters of :class:`TDDIP` (published values in parentheses in the help)."""

    max_iter: int = param(
        0,
        "outer iterations (steps_per_iteration optimiser steps each); 0: the whole budget, "
        "ceil(steps / steps_per_iteration)",
        minimum=0,
    )
    steps: int = param(DEFAULT_STEPS, "optimiser steps of the whole schedule (published: 10000)", minimum=1, basic=True)
    steps_per_iteration: int = param(
        DEFAULT_STEPS_PER_ITERATION,
        "optimiser steps per outer iteration (the unit of progress and checkpoints)",
        minimum=1,
    )
    batch_frames: int = param(DEFAULT_BATCH_FRAMES, "frames per optimiser step, at most P (published: 1)", minimum=1)
    channels: int = param(128, "feature channels of the generator (published: 128)", minimum=1)
    lr: float = param(1e-3, "Adam learning rate (published: 1e-3)", label="learning rate", minimum=0.0)
    lr_decay_every: int = param(
        0, "halve the learning rate every this many steps; 0: steps // 5 (published: 2000 of 10000)", minimum=0
    )
    num_cycle: int = param(13, "turns of the helix latent over the sequence (published: 13)", minimum=0)

    def __post_init__(self):
        if self.max_iter == 0 and self.steps >= 1 and self.steps_per_iteration >= 1:
            self.max_iter = self.outer_iterations()

    def outer_iterations(self) -> int:
        """Outer iterations that the whole step budget takes."""
        return math.ceil(self.steps / self.steps_per_iteration)

    def decay_interval(self) -> int:
        """Optimiser steps between two halvings of the learning rate."""
        return self.lr_decay_every if self.lr_decay_every > 0 else max(1, self.steps // 5)

    def validate(self) -> None:
        for name in ("steps", "steps_per_iteration", "batch_frames", "channels"):
            if getattr(self, name) < 1:
                raise ParameterError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ParameterError(f"lr must be a positive number, got {self.lr}")
        if self.lr_decay_every < 0:
            raise ParameterError(f"lr_decay_every must be >= 0 (0: steps // 5), got {self.lr_decay_every}")
        if self.num_cycle < 0:
            raise ParameterError(f"num_cycle must be >= 0, got {self.num_cycle}")
        super().validate()
        if self.max_iter > self.outer_iterations():
            raise ParameterError(
                f"max_iter {self.max_iter} exceeds the step budget: steps={self.steps} at "
                f"steps_per_iteration={self.steps_per_iteration} is {self.outer_iterations()} outer "
                "iterations (raise steps, or use max_iter=0 for the whole budget)"
            )


def helix_latent(frames: int, num_cycle: int) -> torch.Tensor:
    """The fixed helix latents ``(cos 2 pi c tau, sin 2 pi c tau, tau)``.

    Parameters
    ----------
    frames : int
        P, the number of frames; ``tau = linspace(0, 1, P)``.
    num_cycle : int
        c, the number of turns of the helix.

    Returns
    -------
    torch.Tensor
        float32 (P, 3).
    """
    tau = torch.linspace(0.0, 1.0, frames, dtype=torch.float64)
    angle = 2.0 * math.pi * num_cycle * tau
    return torch.stack([torch.cos(angle), torch.sin(angle), tau], dim=1).float()


def _conv_norm_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # One group per channel: every frame is normalised by its own statistics, the
    # arithmetic of the published BatchNorm with its batch of one frame in training mode.
    return [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.GroupNorm(out_channels, out_channels),
        nn.ReLU(inplace=True),
    ]


class TDDIPNetwork(nn.Module):
    """Mapping network and convolutional generator of TD-DIP (published "basicnet").

    Parameters
    ----------
    image_shape : tuple (H, W)
        Output frame size; the generator makes ``S = 8 * 2^k >= max(H, W)`` and keeps the
        centre ``H x W``.
    channels : int
        Feature channels of every generator layer.
    complex_output : bool
        Two output channels, the real and imaginary parts of complex frames (MRI), as
        the published network for MRI; one real channel otherwise.
    """

    def __init__(self, image_shape: tuple[int, int], channels: int, complex_output: bool = False):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.complex_output = bool(complex_output)
        upsamplings = max(0, math.ceil(math.log2(max(self.image_shape) / BASE_SIZE)))
        self.generated_size = BASE_SIZE * 2**upsamplings
        self.mapping = nn.Sequential(
            nn.Linear(3, MAPPING_WIDTH), nn.ReLU(inplace=True), nn.Linear(MAPPING_WIDTH, BASE_SIZE * BASE_SIZE)
        )
        layers = _conv_norm_relu(1, channels) + _conv_norm_relu(channels, channels)
        for _ in range(upsamplings):
            layers += [nn.Upsample(scale_factor=2, mode="nearest")]
            layers += _conv_norm_relu(channels, channels) + _conv_norm_relu(channels, channels)
        layers += [nn.Conv2d(channels, 2 if self.complex_output else 1, kernel_size=3, padding=1, bias=False)]
        self.generator = nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Frames of the latents.

        Parameters
        ----------
        latent : torch.Tensor
            float32 (B, 3) helix points.

        Returns
        -------
        torch.Tensor
            float32 (B, H, W), complex64 with ``complex_output``.
        """
        seed_images = self.mapping(latent).reshape(-1, 1, BASE_SIZE, BASE_SIZE)
        channels = self.generator(seed_images)
        frames = torch.complex(channels[:, 0], channels[:, 1]) if self.complex_output else channels[:, 0]
        height, width = self.image_shape
        top = (self.generated_size - height) // 2
        left = (self.generated_size - width) // 2
        return frames[:, top : top + height, left : left + width]


def _squared_magnitude(t: torch.Tensor) -> torch.Tensor:
    return torch.view_as_real(t).square().sum(-1) if t.is_complex() else t.square()


@register
class TDDIP(Solver):
    """Time-dependent deep image prior fitted to dynamic tomography or MRI data.

    One outer iteration (:meth:`step`) is ``steps_per_iteration`` optimiser steps; see
    the module docstring for the model and how it departs from the published code.

    Log entries of :meth:`step`: ``data_residual`` = ``||A f - g|| / ||g||`` over the
    frames fitted during the iteration, each frame's residual taken at the optimiser step
    that drew it (before the update; all frames when the iteration covers a whole pass),
    ``loss`` (mean normalised loss of the iteration's steps), ``lr`` (learning rate after
    the iteration) and ``optimizer_steps`` (steps taken so far).
    """

    name = "td-dip"
    Params = TDDIPParams
    presets = {
        "paper": {
            "steps": 10_000,
            "steps_per_iteration": 100,
            "batch_frames": 1,
            "channels": 128,
            "lr": 1e-3,
            "lr_decay_every": 2000,
            "num_cycle": 13,
        },
        "light": {"channels": 32, "steps": 4096, "steps_per_iteration": 1024, "batch_frames": 1},
    }
    # Memory model (fitted with benchmarks/memory_model.py at N = 16, 64, 128): the
    # network's weights and optimiser state are in model_bytes.
    fixed_bytes = 16 * 2**20
    state_copies = 8  # peak float32 (P, N, N) stacks besides the network

    @classmethod
    def model_bytes(cls, size, params: TDDIPParams) -> int:
        """The generator: 96 MiB (weights, Adam state) plus :data:`ACTIVATION_BYTES` per
        activation (with its gradient and the layers' temporaries) of every channel of
        every frame in an optimiser batch."""
        batch = min(params.batch_frames, size.n_frames)
        return 96 * 2**20 + ACTIVATION_BYTES * batch * params.channels * math.prod(size.slice_shape)

    def __init__(self, measurements, params: TDDIPParams, device="cpu"):
        super().__init__(measurements, params, device)
        self.n_frames = measurements.n_frames
        self.batch_frames = min(params.batch_frames, self.n_frames)
        # An operator that is costly to build (tomography): one per frame, built once (the
        # all-frame operator would cost the same to build, and applying it to a
        # zero-padded batch scales with P). Otherwise (MRI): one per batch, when needed.
        if measurements.operator_class.costly_to_build:
            self._frame_operators = [measurements.select_frames([p]).operator(device) for p in range(self.n_frames)]
            first_frame = self._frame_operators[0]
        else:
            self._frame_operators = None
            first_frame = measurements.select_frames([0]).operator(device)
        # Pixels the data do not see (outside the tomographic field of view) are set to zero.
        self._support = first_frame.support_mask()

        data = torch.as_tensor(measurements.data).to(device)
        with torch.no_grad():
            ones = torch.ones((self.n_frames, *measurements.image_shape), device=device)
            ones_energy = sum(
                float(_squared_magnitude(self._apply(indices, ones[indices])).sum())
                for indices in torch.arange(self.n_frames).split(ESTIMATE_CHUNK)
            )
        data_energy = float(_squared_magnitude(data).sum())
        self.scale = math.sqrt(data_energy / ones_energy) if data_energy > 0 and ones_energy > 0 else 1.0
        self._data = data / self.scale
        self._frame_energy = _squared_magnitude(self._data).reshape(self.n_frames, -1).sum(1).double().cpu()
        self._entries_per_frame = math.prod(self._data.shape[1:])
        mean_square = float(_squared_magnitude(self._data).mean())
        self._mean_square = mean_square if mean_square > 0 else 1.0

        self._latent = helix_latent(self.n_frames, params.num_cycle).to(device)
        # The weights depend on the seed only, whoever built the solver and whatever the
        # global random state was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(params.seed)
            self.network = TDDIPNetwork(measurements.image_shape, params.channels, first_frame.is_complex_domain)
        self.network.to(device).train()
        self.optimizer = torch.optim.Adam(self.network.parameters(), lr=params.lr)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=params.decay_interval(), gamma=LR_DECAY_FACTOR
        )
        self._sampler = torch.Generator().manual_seed(params.seed)
        self._order = torch.randperm(self.n_frames, generator=self._sampler)
        self._position = 0
        self.steps_done = 0
        self._cached_estimate: tuple[int, np.ndarray] | None = None

    # -- forward model on a subset of frames ------------------------------------------------
    def _apply(self, indices: torch.Tensor, frames: torch.Tensor, data: torch.Tensor | None = None) -> torch.Tensor:
        """Measurements of ``frames`` (B, H, W), the frames ``indices`` (B,), in range layout.

        With ``data`` (B, ...) of those frames in the file's layout, the residual instead.
        """
        if self._frame_operators is not None:
            operators = [self._frame_operators[p] for p in indices.tolist()]
        else:
            operators = [self.measurements.select_frames(indices.tolist()).operator(self.device)]
        per_operator = len(frames) // len(operators)
        out = []
        for i, op in enumerate(operators):
            batch = slice(i * per_operator, (i + 1) * per_operator)
            measured = op.forward(frames[batch])
            out.append(measured if data is None else measured - op.measured(data[batch]))
        return torch.cat(out)

    def _next_batch(self) -> torch.Tensor:
        if self._position >= self.n_frames:
            self._order = torch.randperm(self.n_frames, generator=self._sampler)
            self._position = 0
        batch = self._order[self._position : self._position + self.batch_frames]
        self._position += len(batch)
        return batch

    # -- the algorithm ----------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        """Run ``steps_per_iteration`` optimiser steps (fewer at the end of the budget)."""
        n_steps = min(self.params.steps_per_iteration, self.params.steps - self.steps_done)
        if n_steps <= 0:
            raise RuntimeError(f"td-dip: the budget of {self.params.steps} optimiser steps is spent")
        residual_energy = 0.0
        fitted_energy = 0.0
        loss_sum = 0.0
        for _ in range(n_steps):
            indices = self._next_batch()
            frames = self.network(self._latent[indices.to(self._latent.device)])
            residual = _squared_magnitude(self._apply(indices, frames, self._data[indices.to(self._data.device)]))
            # The mean over the file's entries of these frames (unsampled ones fit exactly).
            loss = residual.sum() / (len(indices) * self._entries_per_frame) / self._mean_square
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            residual_energy += float(residual.detach().sum())
            fitted_energy += float(self._frame_energy[indices].sum())
            loss_sum += float(loss.detach())
        self.steps_done += n_steps
        self._cached_estimate = None
        return {
            "data_residual": math.sqrt(residual_energy / fitted_energy if fitted_energy > 0 else residual_energy),
            "loss": loss_sum / max(1, n_steps),
            "lr": self.optimizer.param_groups[0]["lr"],
            "optimizer_steps": self.steps_done,
        }

    def estimate(self) -> np.ndarray:
        """All frames generated by the current network, in data units.

        Returns
        -------
        numpy.ndarray
            float32 (P, H, W), complex64 for complex images (MRI); zero outside the
            tomographic field of view.
        """
        if self._cached_estimate is not None and self._cached_estimate[0] == self.steps_done:
            return self._cached_estimate[1].copy()
        with torch.no_grad():
            frames = torch.cat([self.network(chunk) for chunk in self._latent.split(ESTIMATE_CHUNK)])
            if self._support is not None:
                frames = frames * self._support
            result = image_array(frames * self.scale)
        self._cached_estimate = (self.steps_done, result)
        return result.copy()

    # -- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            **super().state_dict(),
            "steps_done": self.steps_done,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": self._sampler.get_state(),
            "order": self._order.clone(),
            "position": self._position,
        }

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.steps_done = int(state["steps_done"])
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self._sampler.set_state(state["sampler"])
        self._order = state["order"].clone()
        self._position = int(state["position"])
        self._cached_estimate = None


# frame_subset(measurements, indices) became measurements.select_frames(indices).
__getattr__ = moved_attribute(__name__, {"frame_subset": "imaging.measurements:Measurements.select_frames"})
