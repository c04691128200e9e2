"""Sample data (File > Open Sample): the dynamic phantoms, a dynamic volume and one
acquisition per modality.

Everything is generated on the spot (no downloads). Phantoms come at the paper's grid
(N = 128) with 64 frames; the volume and the ready-made measurements are smaller
(N = 64, 32 frames) so that a first reconstruction takes seconds on a laptop CPU.

Each sample opens to the right of what the viewer already shows (:func:`._layers.free_x`),
so that samples of different sizes sit side by side instead of covering each other;
a measurement example's picture (and its frame marker) sits right of its ground truth.
"""

from __future__ import annotations

from ._layers import current_viewer, free_x, image_layer, measurement_layers

PHANTOM_FRAMES = 64
PHANTOM_SIZE = 128
MEASUREMENT_FRAMES = 32
MEASUREMENT_SIZE = 64
VOLUME_SLICES = 4

#: Layer names of the phantoms: what each one shows.
PHANTOM_TITLES = {
    "walnut": "walnut phantom",
    "shepp_logan": "Shepp-Logan phantom",
    "material": "material phantom",
    "cardiac": "cardiac phantom",
}


def phantom_layer(name: str, frames: int = PHANTOM_FRAMES, size: int = PHANTOM_SIZE, seed: int = 0) -> tuple:
    """Layer-data tuple of a dynamic phantom: float32 (frames, size, size) in [0, 1].

    Parameters
    ----------
    name : str
        A key of :data:`imaging.phantoms.PHANTOMS`.
    frames, size, seed : int
        Passed to the phantom function.
    """
    from imaging.phantoms import get_phantom

    images = get_phantom(name)(frames=frames, size=size, seed=seed)
    title = PHANTOM_TITLES.get(name, f"{name} phantom")
    offset = (0.0, free_x(current_viewer(), size))
    return image_layer(images, title, contrast_limits=(0.0, 1.0), metadata={"phantom": name}, offset=offset)


def walnut() -> list[tuple]:
    """Walnut phantom, (64, 128, 128)."""
    return [phantom_layer("walnut")]


def shepp_logan() -> list[tuple]:
    """Dynamic Shepp-Logan phantom, (64, 128, 128)."""
    return [phantom_layer("shepp_logan")]


def material() -> list[tuple]:
    """Material phantom, (64, 128, 128)."""
    return [phantom_layer("material")]


def cardiac() -> list[tuple]:
    """Cardiac phantom, (64, 128, 128)."""
    return [phantom_layer("cardiac")]


def walnut_volume() -> list[tuple]:
    """Walnut volume, (32, 4, 64, 64): 4 slices through the walnut, all moving alike.

    A (T, Z, Y, X) object for Simulate acquisition, which measures it slice by slice.
    """
    from imaging.phantoms import volume

    images = volume("walnut", frames=MEASUREMENT_FRAMES, size=MEASUREMENT_SIZE, slices=VOLUME_SLICES)
    offset = (0.0, free_x(current_viewer(), MEASUREMENT_SIZE))
    return [
        image_layer(
            images, "walnut volume phantom", contrast_limits=(0.0, 1.0), metadata={"phantom": "walnut"}, offset=offset
        )
    ]


def _measurement_example(phantom: str, modality: str, title: str, **options) -> list[tuple]:
    from imaging.simulate import simulate

    measurements = simulate(
        phantom, frames=MEASUREMENT_FRAMES, size=MEASUREMENT_SIZE, modality=modality, seed=0, **options
    )
    truth_name = f"{PHANTOM_TITLES.get(phantom, phantom)} ground truth"
    offset = (0.0, free_x(current_viewer(), MEASUREMENT_SIZE))
    truth = image_layer(
        measurements.ground_truth, truth_name, contrast_limits=(0.0, 1.0), metadata={"phantom": phantom}, offset=offset
    )
    return [truth, *measurement_layers(measurements, title, offset)]


def tomography_measurement() -> list[tuple]:
    """Walnut, 32 frames of 64x64, one bit-reversal view per frame, 0.5% noise.

    Returns the ground truth layer, the sinogram layer (32, 64) and its frame marker.
    """
    return _measurement_example(
        "walnut", "tomography", "walnut sinogram (bit-reversal, 1 view/frame)", schedule="bit-reversal"
    )


def mri_measurement() -> list[tuple]:
    """Cardiac, 32 frames of 64x64, 8 variable-density k-space lines per frame, 0.5% noise.

    Returns the ground truth layer and the log-magnitude k-space layer (32, 64, 64).
    """
    return _measurement_example(
        "cardiac", "mri", "cardiac k-space (variable-density, 8 lines/frame)", lines_per_frame=8
    )
