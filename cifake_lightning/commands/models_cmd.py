"""`cifake models [PATTERN] [--paper]`: list registered models (and the paper's 36 topologies).

It imports torch and the model files (not Lightning): about 2 s on a laptop-class CPU."""

from __future__ import annotations

import argparse
import difflib
import json

from ..errors import ConfigError
from ..models import create_model, paper_topologies
from ..models.registry import find_models, list_models, model_spec


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(prog="cifake models", description="List models addressable by name.")
    ap.add_argument("pattern", nargs="?", default="*", help="glob over names, e.g. 'conv128*'")
    ap.add_argument(
        "--paper", action="store_true", help="only Bird & Lotfi's 36 topologies, in the paper's order"
    )
    ap.add_argument("--params", action="store_true", help="also build each model and count its parameters")
    ap.add_argument(
        "--spec", action="store_true", help="also print the class_path/init_args each name stands for"
    )
    args = ap.parse_args(argv)
    names = paper_topologies() if args.paper else find_models(args.pattern)
    if not names:
        close = difflib.get_close_matches(args.pattern, list_models(), n=5)
        hint = f" (close: {', '.join(close)})" if close else ""
        raise ConfigError(
            "pattern", f"no model matches {args.pattern!r}{hint}; `cifake models` lists them all"
        )
    for name in names:
        line = f"{name:32s}"
        if args.params:
            n = sum(p.numel() for p in create_model(name).parameters())
            line += f" {n:>12,d}"
        if len(names) == 1 or args.spec:
            line += f"  --model.backbone {name}  =  {json.dumps(model_spec(name))}"
        print(line.rstrip())
