"""`cifake models [PATTERN] [--paper]`: list registered models (and the paper's 36 topologies)."""

from __future__ import annotations

import argparse


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="cifake models", description="List models addressable by name.")
    ap.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'conv128*'")
    ap.add_argument(
        "--paper", action="store_true", help="only Bird & Lotfi's 36 topologies, in the paper's order"
    )
    ap.add_argument("--params", action="store_true", help="also build each model and count its parameters")
    args = ap.parse_args(argv)
    from ..models import create_model, list_models, paper_topologies

    names = paper_topologies() if args.paper else list_models(args.pattern)
    for name in names:
        if args.params:
            n = sum(p.numel() for p in create_model(name).parameters())
            print(f"{name:32s} {n:>12,d}")
        else:
            print(name)
