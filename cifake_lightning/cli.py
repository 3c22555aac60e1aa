"""The `cifake` command: LightningCLI for fit/validate/test/predict, plus the project's own commands.

    cifake fit --config configs/baseline.yaml --data.root /data/cifake
    cifake test --config configs/baseline.yaml --ckpt_path runs/baseline/version_0/checkpoints/last.ckpt
    cifake test --ckpt runs/baseline/version_0/checkpoints/last.ckpt --data configs/data/ood_genset.yaml
    cifake data synth|download|verify|prepare|classes ...     cifake models [PATTERN]

Any model or data module is chosen from YAML with class_path/init_args. Unknown keys and bad values
fail with jsonargparse's message; errors the user can fix (a bad image, a missing dataset, an
unusable checkpoint) print one line naming the file or option, without a traceback
(set CIFAKE_DEBUG=1 to see it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

# Lightning 2.6 still calls jsonargparse APIs deprecated in 4.49; the notices are not actionable here.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

from jsonargparse import DefaultHelpFormatter
from lightning import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .callbacks import BestCheckpoint, EarlyStop, EpochSeed, RunInfo
from .errors import CheckpointError, CifakeError, ConfigError
from .evaluate.predict_writer import PredictionWriter
from .evaluate.test_report import TestReport
from .tracking.loggers import Tracking, build_loggers, next_version

DEFAULT_MODEL = {
    "class_path": "cifake_lightning.models.ImageClassifier",
    "init_args": {
        "backbone": {
            "class_path": "cifake_lightning.models.BirdLotfiCNN",
            "init_args": {"topology": "conv32x2-dense64x1"},
        }
    },
}
DEFAULT_DATA = {"class_path": "cifake_lightning.data.CIFAKEDataModule"}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
ALIASES = {"--ckpt": "--ckpt_path"}


class LoggedSaveConfig(SaveConfigCallback):
    """Save the resolved config as config.yaml in the run folder and into the W&B run's config."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
        import yaml

        resolved = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.experiment.config.update({"config": resolved}, allow_val_change=True)


MAIN_HELP = """cifake: train, test, explain and compare detectors of AI-generated images.

Lightning subcommands (below): fit, validate, test, predict, e.g.
    cifake fit --config configs/baseline.yaml --data.root /data/cifake
    cifake test --ckpt runs/baseline/version_0/checkpoints/last.ckpt --data configs/data/ood_genset.yaml
Project commands, each with --help:
    cifake data synth|download|prepare|verify|classes    datasets and the decode cache
    cifake models [PATTERN]                              models addressable by name
    cifake explain --ckpt CKPT                           IG, occlusion, Grad-CAM, band-ablation maps
    cifake sweep local|list|check SWEEP.yaml             W&B sweep files, run offline
    cifake report RUNS_DIR                               comparison page of many runs"""


class RawHelp(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with descriptions kept as written (examples stay one per line)."""


class CifakeCLI(LightningCLI):
    """LightningCLI with the project's defaults: tracking section, checkpointing, resumable runs."""

    def __init__(self, args=None, run: bool = True) -> None:
        super().__init__(
            model_class=LightningModule,
            datamodule_class=LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            save_config_callback=LoggedSaveConfig,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"callbacks": [RunInfo(), EpochSeed()], "default_root_dir": "runs"},
            seed_everything_default=0,
            auto_configure_optimizers=False,
            parser_kwargs={"default_env": False, "description": MAIN_HELP, "formatter_class": RawHelp},
            args=args,
            run=run,
        )

    # ------------------------------------------------------------------ parser
    def add_arguments_to_parser(self, parser) -> None:
        parser.add_argument(
            "--name",
            type=str | None,
            default=None,
            help="Run name: runs/<name>/version_N (default: the stem of the first --config)",
        )
        parser.add_class_arguments(Tracking, "tracking")
        parser.add_lightning_class_args(BestCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStop, "early_stopping")
        parser.add_lightning_class_args(TestReport, "report")
        parser.add_lightning_class_args(PredictionWriter, "predictions")
        parser.set_defaults({"model": DEFAULT_MODEL, "data": DEFAULT_DATA})
        parser.link_arguments("seed_everything", "data.init_args.seed")

    # ------------------------------------------------------------------ run naming and resuming
    def _run_name(self, cfg) -> str:
        if cfg.get("name"):
            return cfg["name"]
        configs = cfg.get("config") or []
        for c in configs:
            path = getattr(c, "relative", None) or getattr(c, "absolute", None) or str(c)
            if path:
                return Path(str(path)).stem
        ckpt = cfg.get("ckpt_path")
        if ckpt and ckpt != "last" and Path(ckpt).parent.name == "checkpoints":
            return Path(ckpt).parents[2].name
        return "run"

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        self._name = self._run_name(cfg)
        tracking = cfg["tracking"]
        run_dir = Path(tracking["save_dir"]) / self._name
        self._version = None
        self._resume_epoch = None
        if self.subcommand == "fit" and cfg.get("ckpt_path") == "last":
            found = sorted(run_dir.glob("version_*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
            if found:
                from .models.checkpoint import read_checkpoint

                cfg["ckpt_path"] = str(found[-1])
                self._version = int(found[-1].parents[1].name.split("_")[1])
                self._resume_epoch = int(read_checkpoint(found[-1]).get("epoch", 0))
                print(
                    f"cifake: resuming {self._name} from {found[-1]} (epoch {self._resume_epoch} done)",
                    file=sys.stderr,
                )
            else:
                cfg["ckpt_path"] = None
                print(
                    f"cifake: no last.ckpt under {run_dir}/version_*/checkpoints; starting a new run",
                    file=sys.stderr,
                )
        if self._version is None:
            self._version = next_version(run_dir)
        ckpt = cfg.get("ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc") and not Path(ckpt).is_file():
            raise CheckpointError("checkpoint file not found", ckpt)
        _check_writable(Path(tracking["save_dir"]), "tracking.save_dir")
        if self.subcommand in ("test", "predict"):
            key = "report" if self.subcommand == "test" else "predictions"
            _check_writable(Path(cfg[key]["results_dir"]), f"{key}.results_dir")

    def _parse_ckpt_path(self) -> None:
        if not self.config.get("subcommand"):
            return
        ckpt = self.config[self.config.subcommand].get("ckpt_path")
        if ckpt and Path(ckpt).is_file():
            from .models.checkpoint import read_checkpoint

            read_checkpoint(ckpt)  # raises CheckpointError for non-checkpoints and unsafe pickles
        super()._parse_ckpt_path()

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as e:
            if isinstance(e, CifakeError) or os.environ.get("CIFAKE_DEBUG"):
                raise
            raise ConfigError("config", str(e)) from e

    def instantiate_trainer(self, **kwargs):
        cfg = self.config_init[self.subcommand] if self.subcommand else self.config_init
        if cfg["trainer"].get("logger") in (None, True):
            tracking = cfg["tracking"]
            if not isinstance(tracking, Tracking):
                tracking = Tracking(**dict(tracking))
            kwargs["logger"] = build_loggers(tracking, self._name, self._version, self._resume_epoch)
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config, callbacks):
        if self.subcommand != "fit":  # checkpointing/early stopping only make sense while fitting
            callbacks = [c for c in callbacks if not isinstance(c, (BestCheckpoint, EarlyStop))]
            config = {**config, "enable_checkpointing": False}
        if self.subcommand not in ("test", None):
            callbacks = [c for c in callbacks if not isinstance(c, TestReport)]
        if self.subcommand not in ("predict", None):
            callbacks = [c for c in callbacks if not isinstance(c, PredictionWriter)]
        return super()._instantiate_trainer(config, callbacks)

    def _run_subcommand(self, subcommand: str) -> None:
        try:
            super()._run_subcommand(subcommand)
        except RuntimeError as e:
            ckpt = self.config_init[subcommand].get("ckpt_path")
            if ckpt and ("state_dict" in str(e) or "size mismatch" in str(e)):
                raise CheckpointError(
                    f"does not fit this model/config ({str(e).splitlines()[0]}); test it with the config it was "
                    "trained with, or without --model so the checkpoint's own hyper-parameters are used",
                    ckpt,
                ) from e
            raise


def _check_writable(folder: Path, option: str) -> None:
    """Fail before training starts, not after hours, when outputs cannot be written."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cifake-write-test-"):
            pass
    except OSError as e:
        raise ConfigError(
            option, f"cannot write to {folder} ({e.strerror or e}); choose another folder"
        ) from None


class _DropTip(logging.Filter):
    """Drop Lightning's advertisement for a logger we do not use; keep every other message."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def _quiet_lightning() -> None:
    """Silence notices that do not apply to how cifake runs Lightning (each checked to be harmless)."""
    import warnings

    for handler in logging.getLogger("lightning.pytorch").handlers:
        handler.addFilter(_DropTip())
    # testing a checkpoint does not need the fit-time callbacks it mentions
    warnings.filterwarnings(
        "ignore", message=".*callbacks used to create the checkpoint need to be provided.*"
    )
    # per-batch notices from torchmetrics when a (sanity-check) batch holds one class only
    warnings.filterwarnings("ignore", message=r".*No (positive|negative) samples in targets.*")
    # torch>=2.10 deprecation inside Lightning's own pytree helper
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


def _apply_aliases(argv: list[str]) -> list[str]:
    out = []
    for a in argv:
        key, sep, value = a.partition("=")
        out.append(ALIASES.get(key, key) + sep + value if key in ALIASES else a)
    return out


def main(argv: list[str] | None = None) -> None:
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    from .commands import PROJECT_COMMANDS

    try:
        if argv and argv[0] in PROJECT_COMMANDS:
            PROJECT_COMMANDS[argv[0]](argv[1:])
            return
        argv = _apply_aliases(argv)
        _quiet_lightning()
        if from_sys:  # let LightningCLI read sys.argv itself (it warns when given both)
            sys.argv[1:] = argv
            CifakeCLI()
        else:
            CifakeCLI(args=argv)
    except CifakeError as e:
        if os.environ.get("CIFAKE_DEBUG"):
            raise
        print(f"cifake: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("cifake: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
