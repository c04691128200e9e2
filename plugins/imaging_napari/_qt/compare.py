"""The Compare reconstructions dock widget: scores table, per-frame PSNR and convergence plots."""

import napari
from magicgui.widgets import ComboBox, Label, PushButton, Select, Table
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QAbstractItemView, QStyledItemDelegate

from .. import _logic
from .._jobs import Job
from .._layers import RESULT_KEY
from .._plots import new_figure, plot_comparison, render
from ._common import PlotView, ScrollingContainer, compact_layer_chooser, is_stack, on_destroyed


def _columns() -> dict[str, tuple[str, str, str]]:
    """Metric key -> (column header, number format, header tooltip), as the library computes them."""
    from imaging.metrics import HFEN_SIGMA, SSIM_WINDOW

    return {
        "psnr": ("PSNR", "{:.2f}", "PSNR in dB over the whole stack, data range max(ref) - min(ref)"),
        "psnr_frame_mean": (
            "PSNR/frame",
            "{:.2f}",
            "mean over frames of the per-frame PSNR, dB (a volume's frame: all its slices at one time)",
        ),
        "ssim": (
            "SSIM",
            "{:.3f}",
            f"structural similarity of the whole (T, Y, X) stack, one 3D SSIM with a {SSIM_WINDOW}x{SSIM_WINDOW}"
            f"x{SSIM_WINDOW} window over time and space, data range of the reference (a volume: mean over slices)",
        ),
        "mae": ("MAE", "{:.3g}", "mean absolute error over all pixels and frames"),
        "hfen": (
            "HFEN",
            "{:.3g}",
            f"high-frequency error norm ||LoG(x - ref)||_2 over all frames, Laplacian of Gaussian of sigma "
            f"{HFEN_SIGMA} px per frame; not normalised, as the paper reports it (a volume: mean over slices)",
        ),
    }


class CompareWidget(ScrollingContainer):
    """Score (T, Y, X) or (T, Z, Y, X) layers against a reference: table, frame PSNR, convergence.

    Only layers of the reference's shape are offered for comparison, and the reference
    chooser starts on a layer that has some. The scores and the plots are computed in a
    worker (a 3D SSIM of a large stack takes seconds); the table and the pictures are
    shown when they are ready.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        _logic.preload("imaging.metrics", "matplotlib.figure", "matplotlib.backends.backend_agg")
        self._viewer = viewer
        self._job = None
        self._rows = None
        self._reference = compact_layer_chooser(
            ComboBox(
                name="reference",
                label="reference",
                choices=self._reference_names,
                tooltip="the ground truth, e.g. the phantom the measurement was simulated from",
            )
        )
        self._candidates = Select(
            name="reconstructions",
            label="to compare",
            choices=self._candidate_names,
            tooltip="layers of the reference's shape, (T, Y, X) or (T, Z, Y, X), to score; "
            "Ctrl/Shift-click to pick several",
        )
        self._candidates.native.setMaximumHeight(110)
        self._candidates.native.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self._candidates.native.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._run = PushButton(text="Compare")
        self._status = Label(name="status", value="")
        self._table = Table(name="table", value={"data": [], "index": [], "columns": []})
        self._table.native.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self._table.native.verticalHeader().setMaximumWidth(170)
        self._table.native.verticalHeader().setTextElideMode(Qt.TextElideMode.ElideMiddle)
        # Cells hold text formatted per metric; magicgui's delegate would reformat it.
        self._table.native.setItemDelegate(QStyledItemDelegate(self._table.native))
        self._table.visible = False
        self._plot = PlotView("plot")
        self.extend([self._reference, self._candidates, self._run])
        self._append_full_width(self._status)
        self._append_full_width(self._table)
        self._append_full_width(self._plot)
        self._reference.changed.connect(self._candidates.reset_choices)
        self._run.clicked.connect(self.compare)
        on_destroyed(self, self._detach)

    @property
    def table(self) -> Table:
        """The scores of the last comparison (rows: layers, columns: metrics)."""
        return self._table

    @property
    def plot(self) -> PlotView:
        """Per-frame PSNR and convergence curves of the last comparison."""
        return self._plot

    @property
    def running(self) -> bool:
        """True while a comparison is computed."""
        return self._job is not None

    @property
    def rows(self) -> list[dict] | None:
        """The table rows of the last comparison (``None`` before any or after an error)."""
        return self._rows

    def _stacks(self) -> dict[str, tuple]:
        return {layer.name: layer.data.shape for layer in self._viewer.layers if is_stack(layer, volumes=True)}

    def _reference_names(self, _widget=None) -> list[str]:
        stacks = self._stacks()
        # Layers that have something of their shape to compare with come first, so that the
        # default choice is a usable one.
        comparable = [name for name, shape in stacks.items() if list(stacks.values()).count(shape) > 1]
        return comparable + [name for name in stacks if name not in comparable]

    def _candidate_names(self, _widget=None) -> list[str]:
        stacks = self._stacks()
        reference = self._reference.value
        if reference not in stacks:
            return []
        return [name for name, shape in stacks.items() if name != reference and shape == stacks[reference]]

    def select(self, reference: str, reconstructions: list[str]) -> None:
        """Choose the reference and the reconstructions by layer name (for scripts and tests)."""
        self.reset_choices()
        self._reference.value = reference
        self._candidates.value = list(reconstructions)

    def compare(self) -> None:
        """Score the chosen layers in a worker; the table and plots fill in when done.

        Read the outcome from :attr:`rows` once :attr:`running` is False.
        """
        if self.running:
            return
        reference, chosen = self._reference.value, list(self._candidates.value or [])
        if not reference or not chosen:
            show_error("Compare needs a reference layer and at least one layer of the same shape to compare.")
            return
        layers = {name: self._viewer.layers[name] for name in chosen}
        reference_data = self._viewer.layers[reference].data
        candidates = {name: layer.data for name, layer in layers.items()}
        histories = {
            name: layer.metadata[RESULT_KEY].history for name, layer in layers.items() if RESULT_KEY in layer.metadata
        }

        def score(_report):
            rows, frame_psnr = _logic.compare(reference_data, candidates)
            figure = new_figure(height=4.4)
            plot_comparison(figure, frame_psnr, histories)
            return rows, figure, render(figure)

        self._rows = None
        self._status.value = f"scoring {len(chosen)} layer(s)..."
        self._run.enabled = False
        self._job = Job.of_function(
            score,
            on_return=self._on_scores,
            on_error=self._on_error,
            on_finish=self._on_finish,
            description=f"comparing with {reference}",
        )
        self._job.start()

    def _on_scores(self, scored) -> None:
        rows, figure, pixels = scored
        self._rows = rows
        self._show_table(rows)
        self._plot.show_rendered(figure, pixels)
        self._status.value = ""

    def _on_error(self, exc: BaseException) -> None:
        if isinstance(exc, _logic.InputError):
            message = f"Cannot compare: {exc}"
        else:
            message = _logic.describe_error(exc, "Comparison")
        self._status.value = ""
        show_error(message)

    def _on_finish(self) -> None:
        self._job = None
        self._run.enabled = True

    def _detach(self) -> None:
        if self._job is not None:
            self._job.detach()

    def _show_table(self, rows: list[dict]) -> None:
        columns = _columns()
        keys = list(_logic.METRICS)
        self._table.value = {
            "data": [[columns[key][1].format(row[key]) for key in keys] for row in rows],
            "index": [row["name"] for row in rows],
            "columns": [columns[key][0] for key in keys],
        }
        table = self._table.native
        for column, key in enumerate(keys):
            table.horizontalHeaderItem(column).setToolTip(columns[key][2])
        for row, values in enumerate(rows):
            table.verticalHeaderItem(row).setToolTip(values["name"])
        table.resizeColumnsToContents()
        # Wide and tall enough for every cell: the dock grows rather than the table scrolls.
        header = table.verticalHeader()
        table.setMinimumWidth(
            min(header.sizeHint().width(), header.maximumWidth())
            + sum(table.columnWidth(column) for column in range(len(keys)))
            + 2 * table.frameWidth()
        )
        table.setFixedHeight(
            table.horizontalHeader().sizeHint().height()
            + sum(table.rowHeight(row) for row in range(len(rows)))
            + 2 * table.frameWidth()
        )
        self._table.visible = True


__all__ = ["CompareWidget"]
