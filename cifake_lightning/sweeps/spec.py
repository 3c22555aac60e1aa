"""Read, validate and expand W&B sweep configurations.

Validation and run proposal use W&B's own open-source sweep engine (the `sweeps` package: schema
checks, grid expansion, random sampling and the Bayesian search the W&B controller runs), so a file
that passes here behaves the same under `wandb agent`. Without that package (it pins numpy<2, so it
is an optional extra) grid sweeps still expand with the built-in cartesian product below.
"""

from __future__ import annotations

import itertools
import shlex
import sys
import warnings
from pathlib import Path

import yaml

from ..errors import ConfigError

# the `sweeps` package still uses pydantic-v1 style config; its deprecation notices are not actionable here
warnings.filterwarnings("ignore", message=r"(?s).*allow_population_by_field_name.*")
warnings.filterwarnings("ignore", message=r"Support for class-based `config` is deprecated.*")


def load_sweep(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("sweep file", f"{path} not found")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError("sweep file", f"{path} is not valid YAML ({e})") from None
    if not isinstance(cfg, dict) or "parameters" not in cfg or "method" not in cfg:
        raise ConfigError("sweep file", f"{path} needs at least `method:` and `parameters:`")
    return cfg


def violations(cfg: dict) -> list[str]:
    """W&B's schema violations for this sweep config (empty = valid); needs the `sweeps` package."""
    from sweeps import schema_violations_from_proposed_config  # the optional `sweeps` package

    return list(schema_violations_from_proposed_config(cfg))


def _have_sweeps() -> bool:
    try:
        import sweeps  # noqa: F401

        return True
    except ImportError:
        return False


def grid_runs(cfg: dict) -> list[dict]:
    """All parameter combinations of a grid sweep, in W&B's order when the sweeps package is present."""
    if cfg["method"] != "grid":
        raise ConfigError("sweep method", f"grid expansion needs method: grid, not {cfg['method']!r}")
    if _have_sweeps():
        from sweeps import next_runs  # optional, see _have_sweeps

        proposals = next_runs(cfg, [], validate=True, n=10**6)
        return [{k: v["value"] for k, v in r.config.items()} for r in proposals if r is not None]
    params = cfg["parameters"]
    names, choices = [], []
    for name, spec in params.items():
        names.append(name)
        choices.append(spec["values"] if "values" in spec else [spec["value"]])
    return [dict(zip(names, combo)) for combo in itertools.product(*choices)]


def propose(cfg: dict, finished: list[tuple[dict, float | None]], n: int = 1) -> list[dict]:
    """Next `n` parameter sets for random/bayes sweeps, given finished (params, metric) pairs."""
    if not _have_sweeps():
        raise ConfigError(
            "sweep method", f"method {cfg['method']!r} needs the `sweeps` package: pip install sweeps"
        )
    from sweeps import RunState, SweepRun, next_runs  # optional, see _have_sweeps

    metric = cfg.get("metric", {}).get("name")
    history = [
        SweepRun(
            name=f"r{i}",
            state=RunState.finished,
            config={k: {"value": v} for k, v in params.items()},
            summary_metrics={metric: value} if metric and value is not None else {},
        )
        for i, (params, value) in enumerate(finished)
    ]
    out = next_runs(cfg, history, validate=True, n=n)
    return [{k: v["value"] for k, v in r.config.items()} for r in out if r is not None]


def command_for(cfg: dict, params: dict, cifake: list[str] | None = None) -> list[str]:
    """The argv W&B's agent would run for `params` (its `command:` macros expanded)."""
    cifake = cifake or [sys.executable, "-m", "cifake_lightning"]
    args = [f"--{k}={v}" for k, v in params.items()]
    template = cfg.get("command") or ["${env}", "${interpreter}", "${program}", "${args}"]
    out: list[str] = []
    for tok in template:
        if tok == "${env}":
            continue  # /usr/bin/env: we run the interpreter directly
        if tok == "${interpreter}":
            out.append(sys.executable)
        elif tok == "${program}":
            out.append(cfg["program"])
        elif tok == "${args}":
            out += args
        elif tok == "${args_no_hyphens}":
            out += [a[2:] for a in args]
        elif tok == "cifake" and not out:
            out += cifake
        else:
            out.append(tok)
    return out


def describe(command: list[str]) -> str:
    return " ".join(shlex.quote(c) for c in command)
