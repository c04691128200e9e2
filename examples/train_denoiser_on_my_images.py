"""Train the RED-PSM denoiser on your own static images and use it in a reconstruction.

Put 2D grayscale images (.png, .tif, .npy; stacks allowed) in a folder and run

    python examples/train_denoiser_on_my_images.py my_images/ --epochs 40

Without a folder the script writes a few synthetic images first, so it runs as is
(`--epochs 1 --size 32` makes it a seconds-long smoke run).
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np

import imaging
from imaging.denoisers import generate_static_objects, load_denoiser, train_denoiser
from imaging.simulate import simulate

parser = argparse.ArgumentParser()
parser.add_argument("images", nargs="?", help="folder of static images")
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--size", type=int, default=64, help="size of the demo images and of the test problem")
parser.add_argument("--output", default="my_denoiser.pt")
args = parser.parse_args()

folder = args.images
if folder is None:
    folder = tempfile.mkdtemp(prefix="static-images-")
    for i, image in enumerate(generate_static_objects(24, size=args.size, seed=7)):
        np.save(Path(folder) / f"object_{i:02d}.npy", image)
    print(f"no folder given: wrote 24 synthetic static images to {folder}")

provenance = train_denoiser(args.output, data=folder, epochs=args.epochs, patch_size=min(32, args.size))
validation = provenance["validation"]
print(f"validation MSE {validation['mse_before']:.2e} -> {validation['mse_after']:.2e}")
model = load_denoiser(args.output)  # weights only; the SHA-256 in the .json is checked

# The module itself is the denoiser (denoiser=args.output, the file, does the same);
# the run records it by name and weights digest, e.g. "module:DnCNN:sha256=...".
measurements = simulate("walnut", frames=16, size=args.size)
result = imaging.reconstruct(measurements, method="red-psm", denoiser=model, max_iter=3)
print("RED-PSM with my denoiser", result.params["denoiser"], "PSNR", round(result.history[-1]["psnr"], 2), "dB")
