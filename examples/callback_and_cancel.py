"""Script a reconstruction: watch every outer iteration, save previews, stop early.

The callback gets an IterationInfo (iteration, max_iter, entry = this iteration's log,
estimate() = the current (P, N, N) reconstruction). Returning False stops the run, which
then returns the estimate reached so far. This is how the napari plugin shows progress
and cancels; here we stop when the data residual stops improving.

    python examples/callback_and_cancel.py --frames 16 --size 32
"""

import argparse

import numpy as np

import imaging
from imaging.simulate import simulate

parser = argparse.ArgumentParser()
parser.add_argument("--frames", type=int, default=64)
parser.add_argument("--size", type=int, default=64)
args = parser.parse_args()

measurements = simulate("material", frames=args.frames, size=args.size)
previews = []


def watch(info):
    residual = info.entry["data_residual"]
    print(f"iteration {info.iteration}/{info.max_iter}: data residual {residual:.4f}")
    if info.iteration % 2 == 0:
        previews.append(info.estimate()[info.estimate().shape[0] // 2])
    return info.iteration < 6  # stop after 6 iterations whatever max_iter says


result = imaging.reconstruct(measurements, method="red-psm", callback=watch, max_iter=50)
print("stopped:", result.stop_reason, "after", len(result.history), "iterations")
print("previews collected:", len(previews), "of shape", np.shape(previews[0]) if previews else None)
