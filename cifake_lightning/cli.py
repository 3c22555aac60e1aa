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

import logging
import os
import sys
from pathlib import Path

# Lightning 2.6 still calls jsonargparse APIs deprecated in 4.49; the notices are not actionable here.
os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")

from lightning import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .callbacks import BestCheckpoint, EarlyStop, EpochSeed, RunInfo
from .errors import CheckpointError, CifakeError, ConfigError
from .evaluate.predict_writer import PredictionWriter
from .evaluate.test_report import TestReport
from .help import MAIN_HELP, RawHelp
from .tracking.loggers import Tracking, build_loggers, release_empty_versions, reserve_version

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
        ckpt = cfg.get("ckpt_path")
        if self.subcommand == "fit" and ckpt == "last":
            found = _newest(run_dir, "last.ckpt")
            if found:
                from .models.checkpoint import read_checkpoint

                cfg["ckpt_path"] = str(found)
                self._version = int(found.parents[1].name.split("_")[1])
                self._resume_epoch = int(read_checkpoint(found).get("epoch", 0))
                print(
                    f"cifake: resuming {self._name} from {found} "
                    f"({self._resume_epoch + 1} epoch(s) done; continuing with epoch {self._resume_epoch + 2})",
                    file=sys.stderr,
                )
            else:
                cfg["ckpt_path"] = None
                print(
                    f"cifake: no last.ckpt under {run_dir}/version_*/checkpoints; starting a new run",
                    file=sys.stderr,
                )
        ckpt = cfg.get("ckpt_path")
        if ckpt and ckpt not in ("last", "best", "hpc") and not Path(ckpt).is_file():
            raise CheckpointError("checkpoint file not found", ckpt)
        _check_writable(Path(tracking["save_dir"]), "tracking.save_dir")
        if self.subcommand in ("test", "predict"):
            key = "report" if self.subcommand == "test" else "predictions"
            _check_writable(Path(cfg[key]["results_dir"]), f"{key}.results_dir")
        if self._version is None:
            self._version = reserve_version(run_dir)

    def _parse_ckpt_path(self) -> None:
        """Resolve and vet the checkpoint, then let its saved model config replace the command line's.

        Runs before `before_instantiate_classes`. The checkpoint's hyper-parameters decide the model
        (so `--ckpt` alone rebuilds it); an option given on the command line or in --config that
        contradicts them would be silently ignored by Lightning, so it is refused here, except for
        runtime-only options (compile, channels_last, collect_predictions), which are honoured.
        """
        sub = self.config.get("subcommand")
        if not sub:
            return
        cfg = self.config[sub]
        if sub in ("validate", "test", "predict"):
            run_dir = Path(cfg["tracking"]["save_dir"]) / self._run_name(cfg)
            cfg["ckpt_path"] = _resolve_eval_checkpoint(cfg.get("ckpt_path"), run_dir, sub)
        ckpt = cfg.get("ckpt_path")
        if not (ckpt and Path(ckpt).is_file()):
            super()._parse_ckpt_path()
            return
        from .models.checkpoint import read_checkpoint

        read_checkpoint(ckpt)  # raises CheckpointError for non-checkpoints, unsafe pickles, foreign classes
        if sub == "fit":  # resuming: the config given is the run's own
            super()._parse_ckpt_path()
            return
        given = _flatten(_as_dict(cfg["model"]))
        default = _flatten(_as_dict(self._subcommand_parsers[sub].get_defaults()["model"]))
        super()._parse_ckpt_path()
        cfg = self.config[sub]
        saved = _flatten(_as_dict(cfg["model"]))
        conflicts = []
        for key, value in given.items():
            if key in default and default[key] == value:
                continue  # not set by the user: the checkpoint decides
            if key.startswith(("init_args.optimizer", "init_args.scheduler")):
                continue  # training-only: irrelevant when scoring
            if key in RUNTIME_MODEL_OPTIONS:
                cfg[f"model.{key}"] = value  # honoured: does not change what the model computes
                continue
            if saved.get(key, _MISSING) != value:
                conflicts.append((key, value, saved.get(key, "(no such option)")))
        if conflicts:
            shown = "; ".join(f"model.{k} = {v!r} but the checkpoint has {s!r}" for k, v, s in conflicts[:4])
            raise ConfigError(
                "model",
                f"{shown}. A checkpoint is scored with the model it was trained as; remove these options "
                "(or the --config that sets them) to use the checkpoint's own",
            )

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

    def instantiate_classes(self) -> None:
        """Instantiate; a ConfigError raised inside a constructor reaches the user as one line.

        jsonargparse wraps constructor errors in its own ValueError ("Does not validate against any
        of the Union subtypes"); the project's own error is found in the exception chain and raised
        instead. Any other ValueError/TypeError is a bug and keeps its traceback.
        """
        try:
            super().instantiate_classes()
        except (ValueError, TypeError) as e:
            own = _own_error(e)
            if own is None or os.environ.get("CIFAKE_DEBUG"):
                raise
            raise own from e

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
        if subcommand == "test":
            for cb in self.trainer.callbacks:
                if isinstance(cb, TestReport) and cb.robustness:
                    cb.run_robustness(self.trainer, self.model)


def _own_error(e: BaseException) -> CifakeError | None:
    """The first CifakeError in an exception's cause/context chain, or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, CifakeError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


_MISSING = object()
#: Model options that change how, not what, the model computes; a test/predict run may set them freely.
RUNTIME_MODEL_OPTIONS = ("init_args.compile", "init_args.channels_last", "init_args.collect_predictions")


def _as_dict(node):
    return node.as_dict() if hasattr(node, "as_dict") else node


def _flatten(node, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists and other values are leaves."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out = {}
    for k, v in node.items():
        out.update(_flatten(v, f"{prefix}{k}."))
    return out


def _newest(run_dir: Path, pattern: str) -> Path | None:
    """The most recently written checkpoint matching `pattern` in any version of a run, or None."""
    found = sorted(run_dir.glob(f"version_*/checkpoints/{pattern}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _resolve_eval_checkpoint(ckpt: str | None, run_dir: Path, subcommand: str) -> str:
    """The checkpoint file a validate/test/predict run scores; never silently an untrained model.

    Outside `fit` Lightning resolves "last"/"best" from callbacks that are not there, only warns, and
    then scores the randomly initialised model. Here "last" and "best" mean the newest `last.ckpt` /
    `best-*.ckpt` of the run named by --name (or the config's file name), and no checkpoint is an error.
    """
    if ckpt in ("last", "best"):
        found = _newest(run_dir, "last.ckpt" if ckpt == "last" else "best-*.ckpt")
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


BACKBONE_OPTIONS = ("--model.backbone", "--model.init_args.backbone")


def _registered_backbone(value: str) -> str | None:
    """A model name from `cifake models` as the JSON class spec jsonargparse takes, else None."""
    if not value or any(c in value for c in "./{[:") or value.endswith((".yaml", ".yml", ".json")):
        return None  # a class path, a file or a JSON spec: jsonargparse's own business
    import json

    from .models.registry import model_spec

    spec = model_spec(value)
    return json.dumps(spec) if spec else None


def _apply_aliases(argv: list[str]) -> list[str]:
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
                spec = _registered_backbone(value)
                a = f"{key}={spec}" if spec else a
            elif i + 1 < len(argv):
                spec = _registered_backbone(argv[i + 1])
                if spec:
                    out += [key, spec]
                    i += 2
                    continue
        out.append(a)
        i += 1
    return out


class _Interrupted:
    """Remembers a Ctrl-C: Lightning turns KeyboardInterrupt into `sys.exit(1)` after its clean-up."""

    seen = False

    @classmethod
    def handler(cls, signum, frame):
        cls.seen = True
        raise KeyboardInterrupt


def _fail(message: str) -> None:
    release_empty_versions()
    print(f"cifake: error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> None:
    import signal
    import threading

    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    from .commands import PROJECT_COMMANDS

    installed, previous = False, None
    if threading.current_thread() is threading.main_thread():
        _Interrupted.seen = False
        previous, installed = signal.signal(signal.SIGINT, _Interrupted.handler), True
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
        _fail(str(e))
    except MisconfigurationException as e:  # Lightning's own "this option value is invalid"
        if os.environ.get("CIFAKE_DEBUG"):
            raise
        _fail(f"trainer: {str(e).splitlines()[0]}")
    except KeyboardInterrupt:
        print("cifake: interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:
        if _Interrupted.seen and e.code == 1:  # Lightning's exit after a Ctrl-C: report it as one (130)
            print(
                "cifake: interrupted (`--ckpt_path last` resumes from the last completed epoch)",
                file=sys.stderr,
            )
            sys.exit(130)
        raise
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


if __name__ == "__main__":
    main()
