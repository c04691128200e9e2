"""Matplotlib drawings of the widgets, on any :class:`matplotlib.figure.Figure` (no Qt).

The colours follow napari's dark theme so that the plots sit naturally in a dock widget.
The widgets draw in a worker thread and show the pixels (:func:`render`); matplotlib is
imported by the functions that use it, so importing this module (with a widget) costs
the GUI thread nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from imaging.results import magnitude_image

from ._logic import convergence_curves

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: rc settings matching napari's dark theme (background #262930, light text).
DARK_THEME = {
    "figure.facecolor": "#262930",
    "axes.facecolor": "#262930",
    "savefig.facecolor": "#262930",
    "axes.edgecolor": "#c8c8c8",
    "axes.labelcolor": "#f0f1f2",
    "text.color": "#f0f1f2",
    "xtick.color": "#c8c8c8",
    "ytick.color": "#c8c8c8",
    "grid.color": "#4a4d55",
    "legend.facecolor": "#262930",
    "legend.edgecolor": "#4a4d55",
    "font.size": 8,
}


def new_figure(width: float = 4.0, height: float = 3.0) -> Figure:
    """A figure in napari's dark theme with a constrained layout."""
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(DARK_THEME):
        return Figure(figsize=(width, height), layout="constrained")


def render(figure: Figure) -> np.ndarray:
    """Draw ``figure`` to pixels: uint8 (H, W, 4) RGBA at the figure's size and dpi.

    Any thread may call this (the figure has its own Agg canvas), so the widgets draw
    their plots in a worker and the GUI thread only shows the pixels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def plot_comparison(
    figure: Figure,
    frame_psnr: Mapping[str, np.ndarray],
    histories: Mapping[str, list[dict]] | None = None,
) -> None:
    """Draw per-frame PSNR curves and, for finished runs, their convergence.

    Parameters
    ----------
    figure : Figure
        Cleared and redrawn.
    frame_psnr : mapping
        Layer name -> per-frame PSNR (P,) in dB (for a volume, of each frame's whole (Z, N, N)).
    histories : mapping, optional
        Layer name -> run history (list of per-iteration dicts with ``iteration`` and
        ``data_residual``, and ``psnr`` when the run knew the ground truth); a volume's
        history (entries tagged with ``slice``) is drawn for slice 0, labelled "z = 0".
    """
    curves = {}
    for name, history in (histories or {}).items():
        found = convergence_curves(history)
        if found:
            # A volume's curves are its first slice's (see convergence_curves): the label says so.
            curves[f"{name} (z = 0)" if any("slice" in entry for entry in history) else name] = found
    import matplotlib

    with matplotlib.rc_context(DARK_THEME):
        figure.clear()
        rows = 1 + (1 if curves else 0)
        frames_axis = figure.add_subplot(rows, 1, 1)
        for name, values in frame_psnr.items():
            frames_axis.plot(np.arange(len(values)), values, label=name, linewidth=1.2)
        frames_axis.set_xlabel("frame")
        frames_axis.set_ylabel("PSNR (dB)")
        frames_axis.set_title("per-frame PSNR")
        frames_axis.grid(True)
        if frame_psnr:
            frames_axis.legend(loc="best", fontsize=7)
        if curves:
            residual_axis = figure.add_subplot(rows, 1, 2)
            psnr_axis = None
            for name, found in curves.items():
                if "data_residual" in found:
                    residual_axis.semilogy(*found["data_residual"], label=f"{name} residual", linewidth=1.2)
                if "psnr" in found:
                    psnr_axis = psnr_axis or residual_axis.twinx()
                    psnr_axis.plot(*found["psnr"], linestyle="--", linewidth=1.0, label=f"{name} PSNR")
            residual_axis.set_xlabel("outer iteration")
            residual_axis.set_ylabel("relative data residual")
            residual_axis.set_title("convergence")
            residual_axis.grid(True)
            if psnr_axis is not None:
                psnr_axis.set_ylabel("PSNR (dB), dashed")
    figure.canvas.draw_idle()


#: Spatial basis images per row of :func:`plot_factors`.
FACTOR_COLUMNS = 6


def factors_figure_height(order_plus_one: int, with_images: bool) -> float:
    """Inches of height :func:`plot_factors` needs: the curves plus rows of basis images."""
    rows = -(-order_plus_one // FACTOR_COLUMNS) if with_images else 0
    return 2.2 + 0.75 * rows


def plot_factors(
    figure: Figure,
    temporal_bases: np.ndarray,
    spatial_bases: np.ndarray | None = None,
    title: str = "PSM factors",
) -> None:
    """Draw a PSM model's factors: the temporal bases as curves, the spatial bases as images.

    Parameters
    ----------
    figure : Figure
        Cleared and redrawn.
    temporal_bases : numpy.ndarray
        (P, K+1): basis ``k`` is column ``k``, drawn against the frame index.
    spatial_bases : numpy.ndarray, optional
        (K+1, N, N): basis image ``k``, shown in rows under the curves, each divided by
        its largest magnitude (the factors have arbitrary sign and scale) on a
        symmetric diverging colour scale.
    title : str
    """
    bases = np.asarray(temporal_bases, dtype=float)
    if bases.ndim != 2:
        raise ValueError(f"temporal bases must have shape (P, K+1), got {bases.shape}")
    # Complex bases (MRI) are drawn as their magnitude.
    images = None if spatial_bases is None else magnitude_image(spatial_bases)
    if images is not None and (images.ndim != 3 or len(images) != bases.shape[1]):
        raise ValueError(f"spatial bases must have shape (K+1, N, N) with K+1 = {bases.shape[1]}, got {images.shape}")
    import matplotlib

    with matplotlib.rc_context(DARK_THEME):
        figure.clear()
        # The spatial bases in rows of at most FACTOR_COLUMNS images under the curves.
        columns = min(FACTOR_COLUMNS, bases.shape[1])
        image_rows = 0 if images is None else -(-len(images) // columns)
        grid = figure.add_gridspec(1 + image_rows, columns, height_ratios=[2.0] + [1.0] * image_rows)
        axis = figure.add_subplot(grid[0, :])
        for index in range(bases.shape[1]):
            axis.plot(np.arange(bases.shape[0]), bases[:, index], linewidth=1.0, label=f"$\\psi_{{{index}}}$")
        axis.set_xlabel("frame")
        axis.set_title(title)
        axis.grid(True)
        if bases.shape[1] <= 8:
            axis.legend(loc="best", fontsize=7, ncol=2)
        for index, image in enumerate(images if images is not None else ()):
            peak = float(np.abs(image).max())
            image_axis = figure.add_subplot(grid[1 + index // columns, index % columns])
            image_axis.imshow(image / (peak if peak > 0 else 1.0), cmap="PiYG", vmin=-1.0, vmax=1.0)
            image_axis.set_title(f"$\\lambda_{{{index}}}$", fontsize=7)
            image_axis.set_axis_off()
