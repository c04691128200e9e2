"""Dynamic cardiac MRI with 8 k-space lines per frame and 4 coils; complex images, scored by their magnitude.

    python examples/dynamic_mri.py
    python examples/dynamic_mri.py --frames 16 --size 32 --max-iter 3
"""

import argparse

import imaging
from imaging import metrics
from imaging.results import magnitude_image
from imaging.simulate import simulate

parser = argparse.ArgumentParser()
parser.add_argument("--frames", type=int, default=128)
parser.add_argument("--size", type=int, default=128)
parser.add_argument("--lines", type=int, default=8)
parser.add_argument("--max-iter", type=int, default=None)
args = parser.parse_args()

measurements = simulate(
    "cardiac", frames=args.frames, size=args.size, modality="mri",
    lines_per_frame=args.lines, mask_pattern="variable-density", center_lines=4, coils=4, noise=5e-3,
)
print("k-space", measurements.kspace.shape, "sampled fraction", measurements.mask.mean().round(3))

rows = {}
for method, params in (("fbp-window", {}), ("red-psm", {"max_iter": args.max_iter})):
    result = imaging.reconstruct(measurements, method=method, **params)
    rows[method] = metrics.evaluate(magnitude_image(result.reconstruction), measurements.ground_truth)
print(metrics.format_table(rows))
