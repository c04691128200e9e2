"""``imaging simulate``: a dynamic phantom acquisition to a measurement file."""

from __future__ import annotations

import argparse


def add_parser(sub):
    from ..schedules import MASK_PATTERNS, SCHEDULES
    from ..simulate import TRAJECTORIES

    p = sub.add_parser("simulate", help="simulate a dynamic phantom acquisition into a measurement file")
    p.add_argument("--phantom", required=True, help="walnut, shepp_logan, material or cardiac")
    p.add_argument("--frames", type=int, default=64, help="number of time frames P (default 64)")
    p.add_argument("--size", type=int, default=128, help="image size N (default 128)")
    p.add_argument("--modality", choices=("tomography", "mri"), help="default: mri for cardiac, else tomography")
    p.add_argument("--views-per-frame", type=int, default=1, help="tomography: views per frame V (default 1)")
    p.add_argument(
        "--schedule", choices=SCHEDULES, help="tomography view order (default bit-reversal), radial spoke order "
        "(default golden-angle)"
    )
    p.add_argument("--geometry", choices=("parallel", "fan"), default="parallel", help="tomography beam geometry")
    p.add_argument(
        "--center-offset",
        type=float,
        default=0.0,
        help="tomography: where the rotation axis projects, in detector bins from the detector centre (default 0)",
    )
    p.add_argument("--source-origin", type=float, help="fan beam: source-to-axis distance in pixels (default 2N)")
    p.add_argument("--origin-detector", type=float, help="fan beam: axis-to-detector distance in pixels (default N)")
    p.add_argument(
        "--detector-spacing", type=float, help="tomography: bin width at the detector in pixels (default: 1 pixel at the axis)"
    )
    p.add_argument("--detectors", type=int, help="tomography: detector bins (default: enough to see the whole disk)")
    p.add_argument(
        "--arc", type=float, help="tomography: angular range of the schedule in degrees (default 180, fan beam 360)"
    )
    p.add_argument("--turns", type=int, help="tomography: sweeps of the interlaced schedule (default 4)")
    p.add_argument("--lines-per-frame", type=int, default=8, help="mri: k-space lines per frame (default 8)")
    p.add_argument("--mask-pattern", choices=MASK_PATTERNS, default="variable-density", help="mri k-t pattern")
    p.add_argument("--center-lines", type=int, default=4, help="mri: always-sampled centre lines (default 4)")
    p.add_argument("--coils", type=int, help="mri: number of receive coils (default 8)")
    p.add_argument("--trajectory", choices=TRAJECTORIES, default="cartesian", help="mri: k-space sampling")
    p.add_argument("--spokes-per-frame", type=int, default=8, help="radial mri: spokes per frame (default 8)")
    p.add_argument("--readout-samples", type=int, help="radial mri: samples per spoke (default 2 N)")
    p.add_argument("--phase", action=argparse.BooleanOptionalAction, default=True,
                   help="mri: complex images with the phantom's smooth drifting phase (default; --no-phase: real)")
    p.add_argument("--noise", type=float, default=5e-3, help="relative noise std (default 5e-3, the paper's)")
    p.add_argument("--seed", type=int, default=0, help="seed of phantom, schedule and noise (default 0)")
    p.add_argument("--slices", type=int, help="simulate a dynamic volume of this many slices Z")
    p.add_argument(
        "--protocol",
        choices=("inverse-crime", "fine-grid"),
        default="inverse-crime",
        help="inverse-crime (default, the paper's: data made by the reconstruction operator) or fine-grid "
        "(honest: phantom rendered at 2N, measured with another discretisation, ground truth block-averaged)",
    )
    p.add_argument("-o", "--output", required=True, help="measurement file to write (.npz or .h5)")
    p.set_defaults(run=run)


def run(args):
    import math

    from ..io import save_measurements
    from ..simulate import simulate

    measurements = simulate(
        args.phantom,
        frames=args.frames,
        size=args.size,
        modality=args.modality,
        views_per_frame=args.views_per_frame,
        schedule=args.schedule,
        noise=args.noise,
        seed=args.seed,
        lines_per_frame=args.lines_per_frame,
        mask_pattern=args.mask_pattern,
        center_lines=args.center_lines,
        coils=args.coils,
        slices=args.slices,
        geometry=args.geometry,
        center_offset=args.center_offset,
        source_origin=args.source_origin,
        origin_detector=args.origin_detector,
        detector_spacing=args.detector_spacing,
        n_detectors=args.detectors,
        arc=None if args.arc is None else math.radians(args.arc),
        turns=args.turns,
        protocol=args.protocol,
        trajectory=args.trajectory,
        spokes_per_frame=args.spokes_per_frame,
        readout_samples=args.readout_samples,
        phase=args.phase,
    )
    save_measurements(args.output, measurements)
    shape = measurements.data.shape
    print(
        f"wrote {args.output}: {measurements.modality}, {measurements.n_frames} frames, data {shape}, "
        f"{args.protocol} protocol"
    )
