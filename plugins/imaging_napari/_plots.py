"""Matplotlib drawings of the widgets, on any :class:`matplotlib.figure.Figure` (no Qt).

The colours follow napari's dark theme so that the plots sit naturally in a dock widget;
the same functions draw on an Agg figure in tests.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ._logic import convergence_curves

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
    with matplotlib.rc_context(DARK_THEME):
        return Figure(figsize=(width, height), layout="constrained")


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


def plot_temporal_bases(figure: Figure, temporal_bases: np.ndarray, title: str = "temporal bases") -> None:
    """Draw each column of a PSM temporal basis (P, K+1) against the frame index."""
    bases = np.asarray(temporal_bases, dtype=float)
    if bases.ndim != 2:
        raise ValueError(f"temporal bases must have shape (P, K+1), got {bases.shape}")
    with matplotlib.rc_context(DARK_THEME):
        figure.clear()
        axis = figure.add_subplot(1, 1, 1)
        for index in range(bases.shape[1]):
            axis.plot(np.arange(bases.shape[0]), bases[:, index], linewidth=1.0, label=f"$\\psi_{{{index}}}$")
        axis.set_xlabel("frame")
        axis.set_title(title)
        axis.grid(True)
        if bases.shape[1] <= 8:
            axis.legend(loc="best", fontsize=7, ncol=2)
    figure.canvas.draw_idle()
