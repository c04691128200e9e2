"""``imaging train-denoiser``: train a DnCNN denoiser and write its weights with provenance."""

from __future__ import annotations

import sys

from ._common import CommandError

#: Generated dynamic objects whose reconstructions join the training data by default.
DEFAULT_PAIR_OBJECTS = 64
#: Names of :data:`imaging.run.training_pairs.PAIR_RUNS` (spelled out: the CLI's help must
#: not import the solvers).
PAIR_RUN_SETS = ("psm", "psm+red-psm", "psm+red-psm-v3")


def add_parser(sub):
    p = sub.add_parser(
        "train-denoiser",
        help="train a DnCNN denoiser on static images (or generated static objects)",
        description="Defaults are the settings of the shipped default imaging/data/denoiser/dncnn_v3.pt (its "
        "provenance JSON records the command).",
    )
    p.add_argument("-o", "--output", required=True, help="weights file to write (.pt); provenance goes beside it (.json)")
    p.add_argument("--data", nargs="+", help="folders/files of static images (.npy, .tif, .png); default: generated objects")
    p.add_argument("--images", type=int, default=512, help="number of generated objects (default 512)")
    p.add_argument("--size", type=int, default=96, help="side of generated objects (default 96)")
    p.add_argument("--depth", type=int, default=5, help="convolution layers (default 5)")
    p.add_argument("--width", type=int, default=24, help="channels per hidden layer (default 24)")
    p.add_argument("--direct", action="store_true", help="predict the clean image instead of the noise (residual)")
    p.add_argument("--bias", action="store_true",
                   help="convolutions with biases (default: bias-free, scale-equivariant; the v1 denoiser had biases)")
    p.add_argument("--dilations", type=int, nargs="+", help="dilation of each convolution (default all 1)")
    p.add_argument("--epochs", type=int, default=800, help="training epochs (default 800)")
    p.add_argument("--batch-size", type=int, default=16, help="patches per batch (default 16)")
    p.add_argument("--patch-size", type=int, default=32, help="training patch side (default 32)")
    p.add_argument("--noise-range", type=float, nargs=2, default=(0.0, 0.1), metavar=("LOW", "HIGH"),
                   help="noise std range relative to the image maximum (default 0 0.1)")
    p.add_argument("--noise-sampling", choices=("uniform", "log-uniform"), default="log-uniform",
                   help="how noise stds are drawn from the range (default log-uniform)")
    p.add_argument("--clean-fraction", type=float, default=0.25, help="fraction of images left noise-free (default 0.25)")
    p.add_argument("--streak-fraction", type=float, default=0.25, help="fraction of noisy images with streak noise")
    p.add_argument("--reconstruction-pairs", type=int, metavar="OBJECTS",
                   help="also train on intermediate PSM reconstructions of this many generated dynamic objects "
                   f"(default {DEFAULT_PAIR_OBJECTS} with generated training objects, 0 with --data; 0: none)")
    p.add_argument("--pair-size", type=int, default=64, help="grid N of the generated dynamic objects (default 64)")
    p.add_argument("--pair-frames", type=int, default=64, help="frames P of the generated dynamic objects (default 64)")
    p.add_argument("--pair-seed", type=int, default=1000, help="seed of the generated dynamic objects (default 1000)")
    p.add_argument("--pair-runs", choices=PAIR_RUN_SETS, default="psm+red-psm",
                   help="reconstructions that give the pairs: 'psm+red-psm' (default: two PSM runs and a red-psm run "
                   "denoised by dncnn-v2, whose iterates keep the milder artefacts a denoiser inside red-psm meets), "
                   "'psm+red-psm-v3' (the red-psm run denoised by dncnn-v3 with red-psm's automatic model size and "
                   "penalty; its milder pairs gave a weaker denoiser on the tuning phantoms) or 'psm' (the PSM runs "
                   "only, as for dncnn-v2)")
    p.add_argument("--pair-fraction", type=float, default=0.5,
                   help="expected fraction of each batch drawn from the reconstruction pairs (default 0.5)")
    p.add_argument("--loss-floor", type=float, default=0.02,
                   help="noise floor of the loss weighting (default 0.02); 0: plain MSE")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW learning rate (default 2e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay (default 1e-4)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="held-out validation fraction (default 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of data, noise and initialisation (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.set_defaults(run=run)


def run(args):
    from ..denoisers import train_denoiser

    if not args.output.endswith(".pt"):
        raise CommandError(f"--output must end in .pt, got {args.output}")
    objects = args.reconstruction_pairs
    if objects is None:
        objects = 0 if args.data else DEFAULT_PAIR_OBJECTS
    if objects < 0:
        raise CommandError(f"--reconstruction-pairs must be >= 0, got {objects}")
    pairs = None
    if objects:

        def pairs():
            from ..run.training_pairs import PAIR_RUNS, reconstruction_pairs

            print(f"reconstructing {objects} generated dynamic objects for training pairs", flush=True)
            return reconstruction_pairs(objects, size=args.pair_size, frames=args.pair_frames, seed=args.pair_seed,
                                        runs=PAIR_RUNS[args.pair_runs], progress=sys.stderr.isatty())

    provenance = train_denoiser(
        args.output,
        data=args.data,
        n_images=args.images,
        size=args.size,
        depth=args.depth,
        width=args.width,
        residual=not args.direct,
        bias=args.bias,
        dilations=args.dilations,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        noise_range=tuple(args.noise_range),
        noise_sampling=args.noise_sampling,
        clean_fraction=args.clean_fraction,
        streak_fraction=args.streak_fraction,
        pairs=pairs,
        pair_fraction=args.pair_fraction if objects else 0.0,
        loss_floor=args.loss_floor or None,
        lr=args.lr,
        weight_decay=args.weight_decay,
        val_fraction=args.val_fraction,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        progress=sys.stderr.isatty(),
        command=" ".join(["imaging", *sys.argv[1:]]),
    )
    print(f"wrote {args.output} (sha256 {provenance['sha256'][:12]}...)")
    return 0
