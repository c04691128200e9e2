"""``imaging methods``: the registered methods, or one method's parameters and presets."""

from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("methods", help="list reconstruction methods, or one method's parameters")
    p.add_argument("name", nargs="?", help="a method name")
    p.set_defaults(run=run)


def run(args):
    from ..solvers import METHODS, get_solver

    if args.name is None:
        for name, cls in METHODS.items():
            doc = (cls.__doc__ or "").strip().splitlines()
            print(f"{name:12s} {', '.join(cls.modalities):18s} {doc[0] if doc else ''}")
        return 0
    cls = get_solver(args.name)
    print(f"{cls.name}: parameters (use --set NAME=VALUE or a YAML --config)")
    for item in cls.describe_params():
        print(f"  {item['name']:22s} {item['default']!r:>12}  {item['help']}")
    for preset, values in cls.presets.items():
        print(f"  preset {preset}: {values}")
    return 0
