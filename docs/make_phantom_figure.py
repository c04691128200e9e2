"""Write docs/phantoms.png: five frames of each dynamic phantom side by side.

Run from the repository root::

    python docs/make_phantom_figure.py [--output docs/phantoms.png]

Each row is one phantom at N = 128 with P = 64 frames. The tomography phantoms show
frames spread over the whole sequence; the cardiac row shows one of its four
heartbeats (end-diastole to end-systole and back).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Let the script run from a plain checkout, without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from imaging.phantoms import PHANTOMS  # noqa: E402

FRAMES = 64
SIZE = 128
SHOWN_FRAMES = {
    "walnut": [0, 16, 32, 47, 63],
    "shepp_logan": [0, 16, 32, 47, 63],
    "material": [0, 16, 32, 47, 63],
    "cardiac": [0, 3, 6, 9, 12],
}
ROW_TITLES = {
    "walnut": "walnut\n(piecewise-affine motion)",
    "shepp_logan": "shepp_logan\n(piecewise-affine motion)",
    "material": "material\n(progressive compression)",
    "cardiac": "cardiac\n(one of 4 heartbeats)",
}


def make_figure(output: Path) -> None:
    """Render the phantoms and save the grid of frames as a PNG at ``output``."""
    names = list(PHANTOMS)
    columns = len(next(iter(SHOWN_FRAMES.values())))
    figure, axes = plt.subplots(len(names), columns, figsize=(2.2 * columns + 1.2, 2.3 * len(names)))
    for row, name in enumerate(names):
        images = PHANTOMS[name](frames=FRAMES, size=SIZE, seed=0)
        for column, frame in enumerate(SHOWN_FRAMES[name]):
            axis = axes[row, column]
            axis.imshow(images[frame], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            axis.set_title(f"frame {frame}", fontsize=9)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(ROW_TITLES[name], fontsize=10)
    figure.suptitle(f"Dynamic phantoms (N = {SIZE}, P = {FRAMES}, seed 0)", fontsize=12)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=80)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path(__file__).with_name("phantoms.png"))
    make_figure(parser.parse_args().output)


if __name__ == "__main__":
    main()
