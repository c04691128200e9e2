"""The Compare reconstructions dock widget: scores table, per-frame PSNR and convergence plots."""

import napari
from magicgui.widgets import ComboBox, PushButton, Select, Table
from napari.utils.notifications import show_error
from qtpy.QtWidgets import QStyledItemDelegate

from .. import _logic
from .._layers import RESULT_KEY
from .._plots import plot_comparison
from ._common import PlotWidget, ScrollingContainer, compact_layer_chooser, is_stack


class CompareWidget(ScrollingContainer):
    """Score (T, Y, X) or (T, Z, Y, X) layers against a reference: table, frame PSNR, convergence."""

    #: Metric key -> (column header, number format, header tooltip).
    _COLUMNS = {
        "psnr": ("PSNR", "{:.2f}", "volume PSNR in dB, data range max(ref) - min(ref)"),
        "psnr_frame_mean": (
            "PSNR/frame",
            "{:.2f}",
            "mean over frames of the per-frame PSNR, dB (a volume's frame: all its slices at one time)",
        ),
        "ssim": ("SSIM", "{:.3f}", "structural similarity, mean over frames (a volume: also over slices)"),
        "mae": ("MAE", "{:.3g}", "mean absolute error"),
        "hfen": (
            "HFEN",
            "{:.3g}",
            "high-frequency error norm (LoG-filtered relative error; a volume: mean over slices)",
        ),
    }

    def __init__(self, viewer: napari.viewer.Viewer):
        super().__init__()
        self._viewer = viewer
        self._reference = compact_layer_chooser(
            ComboBox(
                name="reference",
                label="reference",
                choices=self._stack_names,
                tooltip="the ground truth, e.g. the phantom the measurement was simulated from",
            )
        )
        self._candidates = Select(
            name="reconstructions",
            label="to compare",
            choices=self._candidate_names,
            tooltip="one or more layers of the reference's shape, (T, Y, X) or (T, Z, Y, X), to score; "
            "Ctrl/Shift-click to pick several",
        )
        self._candidates.native.setMaximumHeight(110)
        self._run = PushButton(text="Compare")
        self._table = Table(name="table", value={"data": [], "index": [], "columns": []})
        self._table.native.setEditTriggers(self._table.native.EditTrigger.NoEditTriggers)
        self._table.native.verticalHeader().setMaximumWidth(170)
        # Cells hold text formatted per metric; magicgui's delegate would reformat it.
        self._table.native.setItemDelegate(QStyledItemDelegate(self._table.native))
        self._table.visible = False
        self._plot = PlotWidget("plot", height=4.4)
        self.extend([self._reference, self._candidates, self._run])
        self._append_full_width(self._table)
        self._append_full_width(self._plot)
        self._reference.changed.connect(self._candidates.reset_choices)
        self._run.clicked.connect(self.compare)

    @property
    def table(self) -> Table:
        """The scores of the last comparison (rows: layers, columns: metrics)."""
        return self._table

    @property
    def plot(self) -> "PlotWidget":
        """Per-frame PSNR and convergence curves of the last comparison."""
        return self._plot

    def _stack_names(self, _widget=None) -> list[str]:
        return [layer.name for layer in self._viewer.layers if is_stack(layer, volumes=True)]

    def _candidate_names(self, _widget=None) -> list[str]:
        return [name for name in self._stack_names() if name != self._reference.value]

    def select(self, reference: str, reconstructions: list[str]) -> None:
        """Choose the reference and the reconstructions by layer name (for scripts and tests)."""
        self.reset_choices()
        self._reference.value = reference
        self._candidates.value = list(reconstructions)

    def compare(self) -> list[dict] | None:
        """Fill the table and plots; returns the table rows (``None`` after an error)."""
        reference, chosen = self._reference.value, list(self._candidates.value or [])
        if not reference or not chosen:
            show_error("Compare needs a reference layer and at least one reconstruction layer.")
            return None
        layers = {name: self._viewer.layers[name] for name in chosen}
        try:
            rows, frame_psnr = _logic.compare(
                self._viewer.layers[reference].data, {name: layer.data for name, layer in layers.items()}
            )
        except _logic.InputError as exc:
            show_error(f"Cannot compare: {exc}")
            return None
        self._show_table(rows)
        histories = {
            name: layer.metadata[RESULT_KEY].history for name, layer in layers.items() if RESULT_KEY in layer.metadata
        }
        plot_comparison(self._plot.figure, frame_psnr, histories)
        self._plot.visible = True
        return rows

    def _show_table(self, rows: list[dict]) -> None:
        keys = list(_logic.METRICS)
        self._table.value = {
            "data": [[self._COLUMNS[key][1].format(row[key]) for key in keys] for row in rows],
            "index": [row["name"] for row in rows],
            "columns": [self._COLUMNS[key][0] for key in keys],
        }
        table = self._table.native
        for column, key in enumerate(keys):
            table.horizontalHeaderItem(column).setToolTip(self._COLUMNS[key][2])
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

