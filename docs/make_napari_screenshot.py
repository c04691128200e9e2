"""Write docs/napari-screenshot.png and one picture per panel: a real run of the napari plugin on the walnut.

The script drives the plugin the way a user does: it opens the walnut phantom,
simulates one bit-reversal view per frame with 0.5% noise, reconstructs with
fbp-window and with the best method available (RED-PSM, fast preset) in the plugin's
worker thread, compares both to the phantom, and saves a screenshot of the whole
window, then a picture of each panel as it stands after its step
(docs/napari-simulate.png, docs/napari-reconstruct.png, docs/napari-compare.png). It
needs the plugin installed (``pip install -e .``) and a display; on a headless machine
run it under Xvfb from the repository root::

    xvfb-run -a -s "-screen 0 1920x1280x24" python docs/make_napari_screenshot.py

It takes about a minute on a laptop CPU (N = 64, P = 64).
"""

import argparse
import time
from pathlib import Path

import napari
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from imaging.solvers import METHODS
from imaging_napari._samples import phantom_layer

PLUGIN = "imaging-redpsm"


def wait_until_idle(widget, timeout: float = 600.0) -> None:
    """Process Qt events until the widget's job (simulation, run, comparison) has finished."""
    deadline = time.monotonic() + timeout
    while widget.running:
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not finish in time")
        QApplication.processEvents()
        time.sleep(0.02)
    QApplication.processEvents()


def reconstruct(widget, measurement_name: str, method: str, preset: str | None) -> str:
    """Run ``method`` in the widget's worker thread; returns the result layer's name."""
    widget.reset_choices()
    widget.measurement.value = measurement_name
    widget.method.value = method
    if preset in METHODS[method].presets:
        widget.preset.value = preset
    widget.run()
    wait_until_idle(widget)
    return widget.last_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path(__file__).with_name("napari-screenshot.png"))
    parser.add_argument("--frames", type=int, default=64, help="frames P of the walnut (default 64)")
    parser.add_argument("--size", type=int, default=64, help="grid size N of the walnut (default 64)")
    parser.add_argument("--preset", default="fast", help="preset of the best method (default fast)")
    parser.add_argument(
        "--panels", type=Path, default=Path(__file__).parent, help="folder of the panel pictures (default docs/)"
    )
    args = parser.parse_args()

    viewer = napari.Viewer(title="napari - RED-PSM dynamic imaging")
    viewer.window.resize(1850, 1200)
    data, meta, _ = phantom_layer("walnut", frames=args.frames, size=args.size)
    phantom = viewer.add_image(data, **meta)

    simulate_dock, simulate = viewer.window.add_plugin_dock_widget(PLUGIN, "Simulate acquisition")
    simulate.reset_choices()
    simulate.object.value = phantom.name
    simulate.simulate()
    wait_until_idle(simulate)
    measurement = viewer.layers[simulate.last_measurement]
    panels = {"simulate": simulate_dock}

    reconstruct_dock, reconstruct_widget = viewer.window.add_plugin_dock_widget(PLUGIN, "Reconstruct", tabify=True)
    baseline = reconstruct(reconstruct_widget, measurement.name, "fbp-window", None)
    best = "red-psm" if "red-psm" in METHODS else "psm" if "psm" in METHODS else "fbp-window"
    result = reconstruct(reconstruct_widget, measurement.name, best, args.preset)

    compare_dock, compare = viewer.window.add_plugin_dock_widget(PLUGIN, "Compare reconstructions")
    compare.select(phantom.name, [result, baseline])
    compare.compare()
    wait_until_idle(compare)
    panels.update(reconstruct=reconstruct_dock, compare=compare_dock)

    # Window layout (private Qt handles are fine in a docs script): both docks get room,
    # the Reconstruct panel is scrolled to its PSM factors (its Run/progress footer stays).
    viewer.window._qt_window.resizeDocks([reconstruct_dock, compare_dock], [560, 600], Qt.Orientation.Vertical)
    for _ in range(20):  # the factors plot is drawn in a worker
        QApplication.processEvents()
        time.sleep(0.05)
    scroll_bar = reconstruct_widget.native.scroll_area.verticalScrollBar()
    scroll_bar.setValue(scroll_bar.maximum())

    # Canvas: object, acquisition, baseline and RED-PSM side by side at one frame.
    measurement.translate = (0.0, 0.0)
    for layer in viewer.layers:
        layer.visible = layer.name in (phantom.name, measurement.name, baseline, result)
    viewer.layers.selection.active = viewer.layers[result]
    viewer.canvas.grid.enabled = True
    viewer.canvas.grid.shape = (2, 2)
    viewer.dims.set_current_step(0, (5 * args.frames) // 8)
    viewer.reset_view()
    for _ in range(20):
        QApplication.processEvents()
        time.sleep(0.05)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.output), canvas_only=False, flash=False)
    print(f"wrote {args.output}")
    save_panels(panels, args.panels)
    viewer.close()


def save_panels(docks: dict, folder: Path) -> None:
    """Save a picture of each dock, undocked at the height of its content, as ``napari-<name>.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, dock in docks.items():
        dock.setFloating(True)
        body = dock.widget()
        body.scroll_area.verticalScrollBar().setValue(0)
        dock.resize(max(dock.width(), 440), min(body.sizeHint().height() + 40, 1200))
        for _ in range(10):
            QApplication.processEvents()
            time.sleep(0.02)
        path = folder / f"napari-{name}.png"
        if not dock.grab().save(str(path)):
            raise OSError(f"cannot write {path}")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
