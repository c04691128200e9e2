"""Dynamic CT with one projection per frame: simulate, reconstruct with RED-PSM, score.

    python examples/dynamic_ct.py                    # walnut, 256 frames of 128x128
    python examples/dynamic_ct.py --frames 16 --size 32 --max-iter 3   # a tiny run
"""

import argparse

import imaging
from imaging import metrics
from imaging.simulate import simulate

parser = argparse.ArgumentParser()
parser.add_argument("--phantom", default="walnut")
parser.add_argument("--frames", type=int, default=256)
parser.add_argument("--size", type=int, default=128)
parser.add_argument("--max-iter", type=int, default=None)
args = parser.parse_args()

# One parallel-beam view per frame, bit-reversal order over [0, pi), 0.5 % noise.
measurements = simulate(args.phantom, frames=args.frames, size=args.size, schedule="bit-reversal", noise=5e-3)
print("sinogram", measurements.sinogram.shape, "angles", measurements.angles.shape)

baseline = imaging.reconstruct(measurements, method="fbp-window")
result = imaging.reconstruct(measurements, method="red-psm", max_iter=args.max_iter)

rows = {name: metrics.evaluate(r.reconstruction, measurements.ground_truth) for name, r in
        {"fbp-window": baseline, "red-psm": result}.items()}
print(metrics.format_table(rows))
imaging.save_reconstruction("dynamic_ct_redpsm.npz", result)
