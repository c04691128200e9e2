"""napari responsiveness: the longest GUI-thread stall of each step of the README's plugin workflow.

Opens a napari viewer (shown: painting counts), adds the walnut phantom (default 256
frames of 128x128), opens the three docks and lets what they preload arrive, then runs
the README's steps through the docks' own methods (what their buttons call):

1. Simulate acquisition (one bit-reversal view per frame),
2. Reconstruct with previews every iteration (default red-psm, fast preset),
3. Compare the result with the phantom,

and measures, for each step, the longest time between two turns of the Qt event loop
(:class:`imaging_napari._qt._common.EventLoopGaps`), how many gaps exceeded 100 ms and
how long the step took. The table goes to ``benchmarks/results/napari-responsiveness.md``.
Run from the repository root on a quiet machine (software OpenGL under Xvfb is what
remote desktops get)::

    xvfb-run -a -s "-screen 0 1920x1280x24" python benchmarks/napari_responsiveness.py
    xvfb-run -a python benchmarks/napari_responsiveness.py --size 32 --frames 16 --method psm --max-iter 2  # smoke
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=256)
    parser.add_argument("--method", default="red-psm")
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--max-iter", type=int, default=None, help="default: the preset's")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "napari-responsiveness.md")
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from imaging_napari._qt._common import EventLoopGaps
    from imaging_napari._samples import phantom_layer

    def wait(condition, seconds=3600.0):
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.001)

    viewer = napari.Viewer(show=True)
    data, meta, _ = phantom_layer("walnut", frames=args.frames, size=args.size)
    viewer.add_image(data, **meta)
    _, simulate = viewer.window.add_plugin_dock_widget("imaging-redpsm", "Simulate acquisition")
    _, reconstruct = viewer.window.add_plugin_dock_widget("imaging-redpsm", "Reconstruct")
    _, compare = viewer.window.add_plugin_dock_widget("imaging-redpsm", "Compare reconstructions")
    simulate.reset_choices()
    simulate.object.value = meta["name"]
    wait(lambda: False, 3.0)  # the docks' background imports arrive, as before a user's first click

    gaps, durations = EventLoopGaps(), {}

    def step(name, start, running):
        gaps.start(name)
        began = time.perf_counter()
        start()
        wait(lambda: not running())
        durations[name] = time.perf_counter() - began
        wait(lambda: False, 0.5)  # what the step's results still draw
        gaps.stop()

    step("simulate", simulate.simulate, lambda: simulate.running)
    reconstruct.reset_choices()
    reconstruct.measurement.value = simulate.last_measurement
    reconstruct.method.value = args.method
    preset = args.preset if args.preset in reconstruct.preset.choices else None
    if preset:
        reconstruct.preset.value = preset
    if args.max_iter is not None:
        reconstruct.set_parameters(max_iter=args.max_iter)
    reconstruct.preview_every.value = 1
    step("reconstruct, preview every iteration", reconstruct.run, lambda: reconstruct.running)
    compare.reset_choices()
    compare.select(meta["name"], [reconstruct.last_result])
    step("compare", compare.compare, lambda: compare.running)
    viewer.close()

    lines = [
        "# napari responsiveness",
        "",
        f"Walnut phantom, {args.frames} frames of {args.size}x{args.size}; {args.method}"
        + (f" ({preset})" if preset else "")
        + f"; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Qt platform "
        f"{QApplication.platformName()}. Command: `python benchmarks/napari_responsiveness.py "
        + " ".join(argv if argv is not None else sys.argv[1:])
        + "`.",
        "",
        "| step | took (s) | longest GUI-thread stall (ms) | stalls > 100 ms |",
        "|---|---|---|---|",
    ]
    for name, seconds in durations.items():
        longest, over = gaps.longest.get(name, 0.0), gaps.over_100_ms.get(name, 0)
        lines.append(f"| {name} | {seconds:.1f} | {longest:.0f} | {over} |")
    table = "\n".join(lines) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
