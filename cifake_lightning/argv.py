"""Rewrites of the `cifake` command line before LightningCLI parses it: `--ckpt` is `--ckpt_path`, and
`--model.backbone NAME` with a name from `cifake models` becomes that name's class spec."""

from __future__ import annotations

import json

from .models.registry import model_spec

ALIASES = {"--ckpt": "--ckpt_path"}
BACKBONE_OPTIONS = ("--model.backbone", "--model.init_args.backbone")


def registered_backbone(value: str) -> str | None:
    """A model name from `cifake models` as the JSON class spec jsonargparse takes, else None."""
    if not value or any(c in value for c in "./{[:") or value.endswith((".yaml", ".yml", ".json")):
        return None  # a class path, a file or a JSON spec: jsonargparse's own business

    spec = model_spec(value)
    return json.dumps(spec) if spec else None


def rewrite_argv(argv: list[str]) -> list[str]:
    """--ckpt -> --ckpt_path; `--model.backbone NAME` with a registered model name -> its class spec."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        key, sep, value = a.partition("=")
        if key in ALIASES:
            a = ALIASES[key] + sep + value
        if key in BACKBONE_OPTIONS:
            if sep:
                spec = registered_backbone(value)
                a = f"{key}={spec}" if spec else a
            elif i + 1 < len(argv):
                spec = registered_backbone(argv[i + 1])
                if spec:
                    out += [key, spec]
                    i += 2
                    continue
        out.append(a)
        i += 1
    return out
