"""``imaging ensemble-denoiser``: combine trained denoisers into one that averages them."""

from __future__ import annotations

import sys

from ._common import CommandError


def add_parser(sub):
    p = sub.add_parser(
        "ensemble-denoiser",
        help="combine trained denoisers of one architecture into one that returns the mean of their outputs",
        description="Members are shipped names (e.g. dncnn-v3) or weights files of `imaging train-denoiser`, "
        "typically runs that differ only in --seed. The result is one weights file (grouped convolutions, one "
        "call per batch) with a provenance JSON that records every member's SHA-256 and training record. "
        "Example: imaging ensemble-denoiser dncnn-v3 seed1.pt seed2.pt -o ensemble.pt",
    )
    p.add_argument("members", nargs="+", help="two or more shipped names or .pt weights files")
    p.add_argument("-o", "--output", required=True, help="weights file to write (.pt); provenance goes beside it")
    p.set_defaults(run=run)


def run(args):
    from ..denoisers import save_ensemble

    if not args.output.endswith(".pt"):
        raise CommandError(f"--output must end in .pt, got {args.output}")
    provenance = save_ensemble(args.members, args.output, command=" ".join(["imaging", *sys.argv[1:]]))
    print(f"wrote {args.output}: {len(args.members)} members (sha256 {provenance['sha256'][:12]}...)")
    return 0
