"""What a validate/test/predict run scores, and whether the command line contradicts it.

Outside `fit`, "last"/"best" mean the newest `last.ckpt` / `best-*.ckpt` of the named run, and no
checkpoint is an error (Lightning would warn and score an untrained model). The checkpoint's saved
model config decides the model; options that contradict it are reported so the CLI can refuse them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .errors import CheckpointError, ConfigError

_MISSING = object()
#: Model options that change how, not what, the model computes; a test/predict run may set them freely.
RUNTIME_MODEL_OPTIONS = (
    "init_args.compile",
    "init_args.channels_last",
    "init_args.collect_predictions",
    "init_args.calibration",  # re-fitted from the validation logits stored in the checkpoint
    "init_args.threshold",
)


def as_dict(node):
    return node.as_dict() if hasattr(node, "as_dict") else node


def flatten(node, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and other values are leaves."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out = {}
    for k, v in node.items():
        out.update(flatten(v, f"{prefix}{k}."))
    return out


def newest_checkpoint(run_dir: Path, pattern: str) -> Path | None:
    """The most recently written checkpoint matching `pattern` in any version of a run, or None."""
    found = sorted(run_dir.glob(f"version_*/checkpoints/{pattern}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def resolve_eval_checkpoint(ckpt: str | None, run_dir: Path, subcommand: str) -> str:
    """The checkpoint file a validate/test/predict run scores; never silently an untrained model.

    Outside `fit` Lightning resolves "last"/"best" from callbacks that are not there, only warns, and
    then scores the randomly initialised model. Here "last" and "best" mean the newest `last.ckpt` /
    `best-*.ckpt` of the run named by --name (or the config's file name), and no checkpoint is an error.
    """
    if ckpt in ("last", "best"):
        found = newest_checkpoint(run_dir, "last.ckpt" if ckpt == "last" else "best-*.ckpt")
        if found is None:
            raise CheckpointError(
                f"--ckpt_path {ckpt}: no {'last.ckpt' if ckpt == 'last' else 'best-*.ckpt'} in any "
                f"version of this run (set --name to the run that was trained, or give the file)",
                run_dir / "version_*" / "checkpoints",
            )
        print(f"cifake: {subcommand} uses {found}", file=sys.stderr)
        return str(found)
    if not ckpt:
        raise ConfigError(
            "ckpt_path",
            f"`cifake {subcommand}` needs a trained checkpoint: --ckpt PATH (or --ckpt_path last|best "
            "with the run's --name); scoring an untrained model gives meaningless numbers",
        )
    if ckpt == "hpc":
        raise ConfigError("ckpt_path", "'hpc' is only meaningful while fitting on a SLURM cluster")
    return ckpt


def model_conflicts(given: dict, default: dict, saved: dict) -> tuple[list[tuple], dict]:
    """Compare flattened model configs: what the user set (differs from the default) against what the
    checkpoint saved. Returns (conflicts [(key, given, saved)], runtime options to re-apply {key: value})."""
    conflicts, runtime = [], {}
    for key, value in given.items():
        if key in default and default[key] == value:
            continue  # not set by the user: the checkpoint decides
        if key.startswith(("init_args.optimizer", "init_args.scheduler")):
            continue  # training-only: irrelevant when scoring
        if key in RUNTIME_MODEL_OPTIONS:
            runtime[key] = value  # honoured: does not change what the model computes
            continue
        if saved.get(key, _MISSING) != value:
            conflicts.append((key, value, saved.get(key, "(no such option)")))
    return conflicts, runtime


#: Options whose change alters what a resumed run computes; anything else (max_epochs, devices,
#: workers, logging, callbacks) may change when a run is continued.
RESUME_FIXED = ("model.", "data.", "seed_everything", "trainer.accumulate_grad_batches",
                "trainer.gradient_clip_val", "trainer.gradient_clip_algorithm")  # fmt: skip
#: ... except these, which change how, not what, is computed
RESUME_FREE = tuple(f"model.{k}" for k in RUNTIME_MODEL_OPTIONS[:3]) + (
    "data.init_args.cache_dir",
    "data.init_args.num_workers",
    "data.init_args.decode_workers",
    "data.init_args.device_resident",
)


def resume_conflicts(saved: dict, given: dict) -> list[tuple[str, object, object]]:
    """(option, value in the run's config.yaml, value now) for every option a resume may not change.

    Both are flattened resolved configs. Paths are compared resolved, so `data/x` and `./data/x` agree.
    """

    def norm(key: str, v):
        if key.endswith((".root",)) and isinstance(v, str) and v:
            return str(Path(v).expanduser().resolve())
        return v

    out = []
    for key in sorted(set(saved) | set(given)):
        if not key.startswith(RESUME_FIXED) or key.startswith(RESUME_FREE):
            continue
        a, b = norm(key, saved.get(key, _MISSING)), norm(key, given.get(key, _MISSING))
        if a != b and not (a is _MISSING or b is _MISSING and a is None):
            out.append((key, None if a is _MISSING else a, None if b is _MISSING else b))
    return out
