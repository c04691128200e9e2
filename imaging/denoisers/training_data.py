"""Training images for the denoiser: generated static objects, or the user's own files.

The generator draws random static objects inside the reconstruction disk from a few
families that span what dynamic tomography and MRI scenes contain, without using the
dynamic test phantoms (walnut, shepp_logan, material, cardiac) or their frames:

- ``shell``: a lobed outer shell around a folded, lobed interior with gaps (nut-like);
- ``blobs``: overlapping smooth ellipses and lobed blobs of different intensities on a
  smooth background (organ-like);
- ``material``: a body with layers, pores and thin cracks (specimen-like);
- ``mixed``: a random combination of all primitives.

Every object may carry a band-limited texture and a smooth intensity variation, and
its edges are sharp or slightly soft. Images are float32 in ``[0, 1]``, maximum 1,
zero outside the disk inscribed in the square.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from pathlib import Path

import numpy as np

from ..io.safe import first_line

FAMILIES = ("shell", "blobs", "material", "mixed")
IMAGE_SUFFIXES = (".npy", ".tif", ".tiff", ".png")


@dataclasses.dataclass
class ImagePairs:
    """Training pairs (degraded input, clean target) for a denoiser, e.g. reconstructions.

    Attributes
    ----------
    inputs, targets : numpy.ndarray
        float32 (M, H, W): what the denoiser is given and what it should return, on
        the same intensity scale.
    groups : numpy.ndarray
        int (M,): pairs of one group (one object, say) stay together when pairs are
        split into training and validation sets.
    record : dict
        How the pairs were made (for the provenance of weights trained on them).
    """

    inputs: np.ndarray
    targets: np.ndarray
    groups: np.ndarray
    record: dict

    def __post_init__(self):
        self.inputs = np.ascontiguousarray(self.inputs, dtype=np.float32)
        self.targets = np.ascontiguousarray(self.targets, dtype=np.float32)
        self.groups = np.asarray(self.groups, dtype=np.int64)
        if self.inputs.ndim != 3 or self.inputs.shape != self.targets.shape or self.groups.shape != self.inputs.shape[:1]:
            raise ValueError(
                f"pairs need inputs and targets of one shape (M, H, W) and groups (M,), got "
                f"{self.inputs.shape}, {self.targets.shape}, {self.groups.shape}"
            )
        if not (np.all(np.isfinite(self.inputs)) and np.all(np.isfinite(self.targets))):
            raise ValueError("pairs contain NaN or infinite values")

    def subset(self, selected: np.ndarray) -> "ImagePairs":
        """The pairs at ``selected`` (indices or a boolean mask), same record."""
        return ImagePairs(self.inputs[selected], self.targets[selected], self.groups[selected], self.record)


class _Canvas:
    """Pixel-centre coordinates in ``[-1, 1]`` and a random generator for one image."""

    def __init__(self, size: int, rng: np.random.Generator):
        axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")
        self.pixel = 2.0 / size
        self.rng = rng

    def edge(self) -> float:
        """Edge width in coordinate units: mostly sharp, sometimes up to ~2 pixels soft."""
        return self.pixel * (0.3 if self.rng.random() < 0.5 else self.rng.uniform(0.5, 2.0))

    def lobed(self, cx, cy, radius, lobes=(2, 6), amplitude=0.15, edge=None) -> np.ndarray:
        """Soft indicator of a star-shaped region ``rho < r(theta)`` with random lobes."""
        rng = self.rng
        dx, dy = self.x - cx, self.y - cy
        rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx)
        boundary = np.ones_like(theta)
        for k in range(lobes[0], lobes[1] + 1):
            boundary += rng.uniform(0, amplitude) / k ** 0.5 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        boundary *= radius
        return _soft_step((boundary - rho) / (edge if edge is not None else self.edge()))

    def ellipse(self, cx, cy, a, b, angle, edge=None) -> np.ndarray:
        """Soft indicator of an ellipse with semi-axes ``a``, ``b`` rotated by ``angle``."""
        c, s = np.cos(angle), np.sin(angle)
        u = (self.x - cx) * c + (self.y - cy) * s
        v = -(self.x - cx) * s + (self.y - cy) * c
        rho = np.hypot(u / a, v / b)
        # Distance to the boundary in coordinate units, approximately, for a uniform edge width.
        return _soft_step((1.0 - rho) * min(a, b) / (edge if edge is not None else self.edge()))

    def smooth_field(self, cutoff: float) -> np.ndarray:
        """Zero-mean, unit-std Gaussian random field band-limited to ``cutoff`` cycles/image."""
        size = self.x.shape[0]
        freq = np.fft.fftfreq(size) * size
        radius = np.hypot(freq[:, None], freq[None, :])
        spectrum = np.exp(-0.5 * (radius / cutoff) ** 2)
        noise = self.rng.standard_normal((size, size))
        field = np.fft.ifft2(np.fft.fft2(noise) * spectrum).real
        return (field - field.mean()) / (field.std() + 1e-12)


def _soft_step(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(np.clip(t, -30, 30)))


def _paint(image: np.ndarray, mask: np.ndarray, value: float) -> np.ndarray:
    """Replace the image by ``value`` where the soft ``mask`` is 1."""
    return image * (1.0 - mask) + value * mask


def _random_centre(canvas: _Canvas, spread: float) -> tuple[float, float]:
    r, phi = spread * np.sqrt(canvas.rng.random()), canvas.rng.uniform(0, 2 * np.pi)
    return r * np.cos(phi), r * np.sin(phi)


def _shell(canvas: _Canvas) -> np.ndarray:
    rng = canvas.rng
    cx, cy = _random_centre(canvas, 0.1)
    outer_r = rng.uniform(0.55, 0.85)
    thickness = rng.uniform(0.06, 0.2)
    outer = canvas.lobed(cx, cy, outer_r, lobes=(2, 5), amplitude=0.12)
    inner_cavity = canvas.lobed(cx, cy, outer_r * (1 - thickness), lobes=(2, 5), amplitude=0.12)
    image = _paint(np.zeros_like(outer), outer, rng.uniform(0.6, 1.0))
    image = _paint(image, inner_cavity, rng.uniform(0.0, 0.15))
    # Folded kernel: high-order lobes with large amplitude make the convoluted interior.
    kernel = canvas.lobed(cx, cy, outer_r * (1 - thickness) * rng.uniform(0.7, 0.95),
                          lobes=(5, 14), amplitude=rng.uniform(0.3, 0.8))
    image = _paint(image, kernel * inner_cavity, rng.uniform(0.3, 0.8))
    for _ in range(rng.integers(1, 5)):
        gx, gy = _random_centre(canvas, outer_r * 0.6)
        gap = canvas.ellipse(gx + cx, gy + cy, rng.uniform(0.02, 0.12), rng.uniform(0.01, 0.05),
                             rng.uniform(0, np.pi))
        image = _paint(image, gap * inner_cavity, rng.uniform(0.0, 0.15))
    return image


def _blobs(canvas: _Canvas) -> np.ndarray:
    rng = canvas.rng
    body = canvas.ellipse(*_random_centre(canvas, 0.1), rng.uniform(0.6, 0.9), rng.uniform(0.45, 0.85),
                          rng.uniform(0, np.pi))
    image = body * rng.uniform(0.1, 0.4) * (1.0 + 0.2 * canvas.smooth_field(rng.uniform(1.0, 3.0)))
    for _ in range(rng.integers(3, 9)):
        cx, cy = _random_centre(canvas, 0.55)
        if rng.random() < 0.5:
            shape = canvas.ellipse(cx, cy, rng.uniform(0.05, 0.35), rng.uniform(0.04, 0.25), rng.uniform(0, np.pi))
        else:
            shape = canvas.lobed(cx, cy, rng.uniform(0.05, 0.3), lobes=(2, 6), amplitude=0.4)
        image = _paint(image, shape * body, rng.uniform(0.0, 1.0))
        if rng.random() < 0.3:
            # A ring (wall around a cavity), like a ventricle or a vessel.
            wall = canvas.ellipse(cx, cy, rng.uniform(0.08, 0.2), rng.uniform(0.08, 0.2), rng.uniform(0, np.pi))
            cavity = canvas.ellipse(cx, cy, rng.uniform(0.03, 0.07), rng.uniform(0.03, 0.07), rng.uniform(0, np.pi))
            image = _paint(image, wall * body, rng.uniform(0.4, 1.0))
            image = _paint(image, cavity * body, rng.uniform(0.0, 1.0))
    return image


def _material(canvas: _Canvas) -> np.ndarray:
    rng = canvas.rng
    if rng.random() < 0.5:
        body = canvas.ellipse(0.0, 0.0, rng.uniform(0.6, 0.92), rng.uniform(0.6, 0.92), rng.uniform(0, np.pi))
    else:
        half = rng.uniform(0.45, 0.65)
        angle = rng.uniform(0, np.pi)
        u = canvas.x * np.cos(angle) + canvas.y * np.sin(angle)
        v = -canvas.x * np.sin(angle) + canvas.y * np.cos(angle)
        edge = canvas.edge()
        body = _soft_step((half - np.abs(u)) / edge) * _soft_step((half * rng.uniform(0.6, 1.4) - np.abs(v)) / edge)
    image = body * rng.uniform(0.4, 0.9)
    if rng.random() < 0.6:
        # Layers: a few bands of different density across the body.
        angle = rng.uniform(0, np.pi)
        u = canvas.x * np.cos(angle) + canvas.y * np.sin(angle)
        for _ in range(rng.integers(1, 4)):
            centre, half = rng.uniform(-0.6, 0.6), rng.uniform(0.03, 0.2)
            band = _soft_step((half - np.abs(u - centre)) / canvas.edge())
            image = _paint(image, band * body, rng.uniform(0.2, 1.0))
    for _ in range(rng.integers(5, 40)):
        cx, cy = _random_centre(canvas, 0.8)
        pore = canvas.ellipse(cx, cy, rng.uniform(0.008, 0.06), rng.uniform(0.008, 0.05), rng.uniform(0, np.pi))
        image = _paint(image, pore * body, rng.uniform(0.0, 0.2))
    for _ in range(rng.integers(0, 4)):
        cx, cy = _random_centre(canvas, 0.6)
        crack = canvas.ellipse(cx, cy, rng.uniform(0.1, 0.4), canvas.pixel * rng.uniform(0.5, 2.0),
                               rng.uniform(0, np.pi), edge=canvas.pixel * 0.5)
        image = _paint(image, crack * body, rng.uniform(0.0, 0.1))
    for _ in range(rng.integers(0, 4)):
        cx, cy = _random_centre(canvas, 0.6)
        inclusion = canvas.lobed(cx, cy, rng.uniform(0.03, 0.12), lobes=(2, 5), amplitude=0.3)
        image = _paint(image, inclusion * body, rng.uniform(0.8, 1.0))
    return image


def _mixed(canvas: _Canvas) -> np.ndarray:
    rng = canvas.rng
    first, second = rng.choice([_shell, _blobs, _material], size=2, replace=False)
    blend = canvas.ellipse(*_random_centre(canvas, 0.5), rng.uniform(0.2, 0.6), rng.uniform(0.2, 0.6),
                           rng.uniform(0, np.pi))
    return first(canvas) * (1 - blend) + second(canvas) * blend


_FAMILY_FUNCTIONS = {"shell": _shell, "blobs": _blobs, "material": _material, "mixed": _mixed}


def generate_static_objects(n_images: int, size: int = 128, seed: int = 0,
                            families: tuple[str, ...] = FAMILIES) -> np.ndarray:
    """Random static objects for training a denoiser.

    Parameters
    ----------
    n_images : int
        Number of images.
    size : int
        Side length N of each square image, at least 16.
    seed : int
        Seed; the same seed gives the same images.
    families : tuple of str
        Object families to draw from, uniformly (see the module docstring).

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(n_images, size, size)`` with values in ``[0, 1]``,
        each image with maximum 1 and zero outside the inscribed disk.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive integer, got {n_images!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 16:
        raise ValueError(f"size must be an integer >= 16, got {size!r}")
    unknown = [f for f in families if f not in _FAMILY_FUNCTIONS]
    if unknown or not families:
        raise ValueError(f"unknown object families {unknown}; expected a non-empty subset of {FAMILIES}")
    rng = np.random.default_rng(seed)
    images = np.empty((n_images, size, size), dtype=np.float32)
    for index in range(n_images):
        canvas = _Canvas(size, rng)
        image = _FAMILY_FUNCTIONS[families[rng.integers(len(families))]](canvas)
        if rng.random() < 0.5:
            # Fine texture (grain, tissue) inside the object only.
            support = image > 0.02
            # Grain of 8 to size/4 cycles per image (8 for images under 32 pixels).
            cutoff = rng.uniform(8, max(8.0, size / 4))
            image = image * (1.0 + rng.uniform(0.03, 0.15) * canvas.smooth_field(cutoff) * support)
        if rng.random() < 0.5:
            image = image * (1.0 + rng.uniform(0.05, 0.3) * canvas.smooth_field(rng.uniform(0.7, 2.0)))
        image = np.clip(image, 0.0, None) * (np.hypot(canvas.x, canvas.y) <= 1.0)
        peak = image.max()
        images[index] = image / peak if peak > 0 else image
    return images


def _normalise(image: np.ndarray) -> np.ndarray | None:
    """Map a 2D image to [0, 1] by min-max scaling; None for a constant image."""
    image = np.asarray(image, dtype=np.float64)
    low, high = float(image.min()), float(image.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("image contains NaN or infinite values")
    if high <= low:
        return None
    return ((image - low) / (high - low)).astype(np.float32)


def _read_array(path: Path) -> np.ndarray:
    """One training file as an array, its declared size checked (as the float64 it is
    normalised in) before it is decoded; colour images become luminance."""
    from ..io.safe import SizeBudget, load_npy, read_png, read_tiff

    suffix = path.suffix.lower()
    as_float = np.dtype(np.float64)
    if suffix == ".npy":
        return load_npy(path, converted=as_float, what="training image")
    budget = SizeBudget(path)
    if suffix in (".tif", ".tiff"):
        return read_tiff(path, "image", budget, converted=as_float)[0]
    array = read_png(path, budget, converted=as_float)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        # Colour PNG: luminance of the RGB channels, alpha dropped.
        array = array[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif array.ndim == 3 and array.shape[-1] == 2:  # grey + alpha
        array = array[..., 0]
    return array


def _image_files(entry) -> list[Path]:
    """The image files an entry names: a folder (its images, not recursive, sorted), a glob
    pattern (its matches, sorted) or one file."""
    path = Path(entry)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise ValueError(f"folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} images")
        return files
    if not path.exists() and any(character in str(entry) for character in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(entry)) if Path(p).is_file())
        if not files:
            raise ValueError(f"pattern {entry} matches no files")
        return files
    return [path]


def load_image_files(data: str | os.PathLike | list) -> list[np.ndarray]:
    """Read static training images from folders, glob patterns or files.

    Parameters
    ----------
    data : str, os.PathLike or list of those
        Each entry is a folder (its ``.npy``, ``.tif``, ``.tiff`` and ``.png`` files, not
        recursive, in sorted order), a glob pattern such as ``scans/*.tif`` (its matches,
        sorted) or a file. A file may hold one 2D image or a stack ``(Z, H, W)`` of 2D
        images. Every file's declared size is checked against the memory available
        before it is decoded.

    Returns
    -------
    list of numpy.ndarray
        float32 2D images, each min-max normalised to ``[0, 1]``; constant images are
        skipped.
    """
    entries = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not entries:
        raise ValueError("the list of training image files is empty")
    files = [path for entry in entries for path in _image_files(entry)]
    images: list[np.ndarray] = []
    for path in files:
        if not path.is_file():
            raise FileNotFoundError(f"training image {path} does not exist")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"training image {path} has an unsupported type; expected {', '.join(IMAGE_SUFFIXES)}")
        try:
            array = _read_array(path)
        except (OSError, ValueError) as err:
            raise ValueError(f"cannot read training image {path}: {first_line(err)}") from None
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise ValueError(
                f"training image {path} has shape {array.shape} and dtype {array.dtype}; "
                "expected a real 2D image (H, W) or a stack (Z, H, W)"
            )
        for slice_2d in array:
            try:
                normalised = _normalise(slice_2d)
            except ValueError as err:
                raise ValueError(f"training image {path}: {err}") from None
            if normalised is not None:
                images.append(normalised)
    if not images:
        raise ValueError("all training images are constant; nothing to learn from")
    return images
