"""Do two checkouts reconstruct the same? Small cases run in one, compared in the other.

A change meant to save memory or time (block-wise products, in-place updates) must
leave the results bit-identical or within float32 rounding. This script runs a fixed
set of small reconstructions with the ``imaging`` package it imports and either writes
them (``--write``) or compares them with a file written by another checkout
(``--compare``): the largest absolute difference of the reconstructions relative to
their peak, the iterations run and the largest relative difference of each logged
quantity.

Usage (from the root of the checkout under test)::

    PYTHONPATH=/path/to/main python benchmarks/compare_checkouts.py --write /tmp/reference.npz
    PYTHONPATH=$PWD python benchmarks/compare_checkouts.py --compare /tmp/reference.npz

Exits with status 1 when a reconstruction differs by more than ``--tolerance``
(relative to its peak, default 1e-4) or ran a different number of iterations.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

#: (name, phantom, frames, size, method, parameters): small, seconds each on one core.
CASES = [
    ("walnut-red-psm", "walnut", 32, 48, "red-psm", {"max_iter": 4}),
    ("walnut-red-psm-fast", "walnut", 32, 48, "red-psm", {"max_iter": 4, "denoise_stride": 2}),
    ("walnut-red-psm-2red", "walnut", 24, 40, "red-psm", {"max_iter": 3, "red_iterations": 2, "knots": 8, "order": 5}),
    ("walnut-red-psm-patches", "walnut", 16, 48, "red-psm", {"max_iter": 2, "patch_size": 32, "knots": 8, "order": 5}),
    ("walnut-psm", "walnut", 32, 48, "psm", {"max_iter": 3}),
    ("walnut-fbp-window", "walnut", 32, 48, "fbp-window", {}),
    ("cardiac-red-psm", "cardiac", 24, 32, "red-psm", {"max_iter": 3, "knots": 8, "order": 5}),
]


def run_cases() -> dict[str, np.ndarray]:
    """Every case's reconstruction and its history (as JSON text), keyed by case name."""
    import torch

    import imaging
    from imaging.simulate import simulate

    torch.set_num_threads(1)
    out: dict[str, np.ndarray] = {}
    for name, phantom, frames, size, method, params in CASES:
        measurements = simulate(phantom, frames=frames, size=size, seed=0)
        measurements.ground_truth = None
        result = imaging.reconstruct(measurements, method, threads=1, **params)
        out[name] = result.reconstruction
        out[f"{name}/history"] = np.array(json.dumps(result.history))
        print(f"{name}: {len(result.history)} iterations", flush=True)
    return out


def compare(reference: dict[str, np.ndarray], current: dict[str, np.ndarray], tolerance: float) -> bool:
    """Print the differences; True when every case agrees within ``tolerance``."""
    agree = True
    for name, *_ in CASES:
        if name not in reference:
            print(f"{name}: not in the reference file")
            continue
        expected, actual = reference[name], current[name]
        peak = float(np.max(np.abs(expected))) or 1.0
        difference = float(np.max(np.abs(actual - expected))) / peak
        old = json.loads(str(reference[f"{name}/history"]))
        new = json.loads(str(current[f"{name}/history"]))
        logged = [
            (key, abs(b[key] - a[key]) / max(abs(a[key]), 1e-30))
            for a, b in zip(old, new)
            for key in a
            if key in b and not key.endswith("seconds") and isinstance(a[key], float)
        ]
        worst = max(logged, key=lambda item: item[1], default=("-", 0.0))
        same = difference <= tolerance and len(old) == len(new)
        agree &= same
        print(
            f"{name}: max |difference| / peak = {difference:.2e} ({'bit-identical' if difference == 0 else 'differs'}), "
            f"iterations {len(old)} -> {len(new)}, worst logged value {worst[0]} rel. {worst[1]:.1e}"
            f"{'' if same else '  <-- DIFFERENT'}"
        )
    return agree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", metavar="FILE", help="run the cases and save them to FILE (.npz)")
    action.add_argument("--compare", metavar="FILE", help="run the cases and compare them with FILE")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest |difference| / peak (default 1e-4)")
    args = parser.parse_args()
    current = run_cases()
    if args.write:
        from imaging.io.atomic import write_atomic

        # np.savez appends ".npz" to a name without it: write to a file object instead.
        def save(temporary: str) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, **current)

        write_atomic(args.write, save)
        print(f"wrote {args.write}")
        return 0
    with np.load(args.compare) as reference:
        return 0 if compare(dict(reference), current, args.tolerance) else 1


if __name__ == "__main__":
    sys.exit(main())
