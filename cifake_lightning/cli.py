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

import signal
import tempfile
import threading
import warnings

import yaml
from lightning import LightningDataModule, LightningModule
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.callbacks import ProgressBar as LightningProgressBar
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from .argv import rewrite_argv
from .callbacks import BestCheckpoint, EarlyStop, EpochSeed, FiniteGuard, ProgressBar, RunInfo

# imported so that --data.help / --model.help know every data module and LightningModule by its short
# name (cifake_lightning.training imports all of its LightningModules)
from .data import cifake as _cifake_data  # noqa: F401
from .data import ood as _ood_data  # noqa: F401
from .errors import CheckpointError, CifakeError, ConfigError
from .evaluate.predict_writer import PredictionWriter
from .evaluate.test_report import TestReport
from .hardware import auto_precision
from .help import MAIN_HELP, SUBCOMMAND_HELP, raw_help
from .models.checkpoint import read_checkpoint
from .resolve import (
    as_dict,
    flatten,
    model_conflicts,
    newest_checkpoint,
    resolve_eval_checkpoint,
    resume_conflicts,
)
from .tracking.loggers import Tracking, build_loggers, release_empty_versions, reserve_version
from .training import ImageClassifier  # noqa: F401

DEFAULT_MODEL = {
    "class_path": "cifake_lightning.training.ImageClassifier",
    "init_args": {
        "backbone": {
            "class_path": "cifake_lightning.models.BirdLotfiCNN",
            "init_args": {"topology": "conv32x2-dense64x1"},
        }
    },
}
DEFAULT_DATA = {"class_path": "cifake_lightning.data.CIFAKEDataModule"}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")


class LoggedSaveConfig(SaveConfigCallback):
    """Save the resolved config as config.yaml in the run folder and into the W&B run's config."""

    def save_config(self, trainer, pl_module, stage: str) -> None:
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
            trainer_defaults={
                "callbacks": [RunInfo(), EpochSeed(), FiniteGuard()],
                # the fit banner names the model and its parameter count; Lightning's summary table
                # (with "Total FLOPs: 0" on a CPU) is noise at this size: --trainer.enable_model_summary true
                "enable_model_summary": False,
                "default_root_dir": "runs",
            },
            seed_everything_default=0,
            auto_configure_optimizers=False,
            parser_kwargs={
                "default_env": False,
                "description": MAIN_HELP,
                "formatter_class": raw_help(),
                **{
                    sub: {
                        "description": text,
                        "formatter_class": raw_help(),
                        "default_env": False,
                        # one line, not argparse's 90-line list of every option: the examples come first
                        "usage": f"cifake {sub} [-h] [-c CONFIG] [--print_config] [OPTIONS]  (options below)",
                    }
                    for sub, text in SUBCOMMAND_HELP.items()
                },
            },
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
    def _run_name(self, cfg, subcommand: str | None) -> str:
        """--name; for validate/test/predict of a checkpoint in a run folder, that run (so a test with a
        data config, `--config configs/test/X.yaml`, logs beside the run it tests); else the stem of the
        first --config; else the checkpoint's run."""
        if cfg.get("name"):
            return cfg["name"]
        ckpt = cfg.get("ckpt_path")
        in_run = (
            bool(ckpt) and ckpt not in ("last", "best", "hpc") and Path(ckpt).parent.name == "checkpoints"
        )
        if in_run and subcommand != "fit":
            return Path(ckpt).parents[2].name
        configs = cfg.get("config") or []
        for c in configs:
            path = getattr(c, "relative", None) or getattr(c, "absolute", None) or str(c)
            if path:
                return Path(str(path)).stem
        if in_run:
            return Path(ckpt).parents[2].name
        return "run"

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        self._name = self._run_name(cfg, self.subcommand)
        tracking = cfg["tracking"]
        run_dir = Path(tracking["save_dir"]) / self._name
        base = Path(tracking["save_dir"]).resolve()
        if run_dir.resolve() == base or base not in run_dir.resolve().parents:
            raise ConfigError("name", f"{self._name!r} would put the run outside {tracking['save_dir']}/")
        if self.subcommand == "fit" and 0 in (
            cfg["trainer"].get("max_epochs"),
            cfg["trainer"].get("max_steps"),
        ):
            raise ConfigError(
                "trainer.max_epochs", "0 trains nothing (no epoch, no checkpoint); give at least 1"
            )
        self._version = None
        self._resume_epoch = None
        ckpt = cfg.get("ckpt_path")
        if self.subcommand == "fit" and ckpt == "last":
            found = newest_checkpoint(run_dir, "last.ckpt")
            if found:
                self._check_resume(cfg, found.parents[1] / "config.yaml")
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
        if cfg["trainer"].get("precision") is None:  # not set: train at what the hardware does natively
            if self.subcommand == "fit":
                cfg["trainer"]["precision"], why = auto_precision()
                print(f"cifake: precision {cfg['trainer']['precision']} ({why}; set --trainer.precision to choose)",
                      file=sys.stderr)  # fmt: skip
            else:  # scoring is cheap: keep probabilities exact
                cfg["trainer"]["precision"] = "32-true"
        _check_writable(Path(tracking["save_dir"]), "tracking.save_dir")
        if self.subcommand in ("test", "predict"):
            key = "report" if self.subcommand == "test" else "predictions"
            _check_writable(Path(cfg[key]["results_dir"]), f"{key}.results_dir")
        if self._version is None and self.subcommand in ("validate", "test", "predict") and ckpt:
            p = Path(ckpt).resolve()  # a checkpoint of this run: log beside it, not in a new version
            if (
                p.parent.name == "checkpoints"
                and p.parents[2] == run_dir.resolve()
                and p.parents[1].name.removeprefix("version_").isdigit()
            ):
                self._version = int(p.parents[1].name.split("_")[1])
        if self._version is None:
            self._version = reserve_version(run_dir)

    def _check_resume(self, cfg, saved_path: Path) -> None:
        """Refuse `--ckpt_path last` with options that change what the run computes (another model, data,
        seed, lr ...), before anything of the run is rewritten: the run's config.yaml, run_info_fit.json
        and metrics.csv stay as its finished epochs wrote them."""
        if not saved_path.is_file():
            return
        try:
            saved = yaml.safe_load(saved_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(
                "ckpt_path", f"{saved_path} is unreadable ({e}); cannot check the resume"
            ) from None
        given = yaml.safe_load(self._subcommand_parsers[self.subcommand].dump(cfg, skip_none=False))
        given["trainer"]["precision"] = saved.get("trainer", {}).get("precision")  # chosen per machine
        conflicts = resume_conflicts(flatten(saved), flatten(given))
        if conflicts:
            shown = "; ".join(f"{k}: {a!r} in the run, {b!r} now" for k, a, b in conflicts[:4])
            more = f" (and {len(conflicts) - 4} more)" if len(conflicts) > 4 else ""
            raise ConfigError(
                "ckpt_path",
                f"resuming {saved_path.parent} with other settings than it was trained with: {shown}{more}. "
                "Resume with the run's own config (its config.yaml), or start a new run (another --name)",
            )

    def _parse_ckpt_path(self) -> None:
        """Resolve and vet the checkpoint, then let its saved model config replace the command line's.

        Runs before `before_instantiate_classes`. The checkpoint's hyper-parameters decide the model
        (so `--ckpt` alone rebuilds it); an option given on the command line or in --config that
        contradicts them would be silently ignored by Lightning, so it is refused here, except for
        runtime-only options (compile, channels_last, collect_predictions, calibration, threshold), which
        are honoured.
        """
        sub = self.config.get("subcommand")
        if not sub:
            return
        cfg = self.config[sub]
        if sub in ("validate", "test", "predict"):
            run_dir = Path(cfg["tracking"]["save_dir"]) / self._run_name(cfg, sub)
            cfg["ckpt_path"] = resolve_eval_checkpoint(cfg.get("ckpt_path"), run_dir, sub)
        ckpt = cfg.get("ckpt_path")
        if not (ckpt and Path(ckpt).is_file()):
            super()._parse_ckpt_path()
            return

        read_checkpoint(ckpt)  # raises CheckpointError for non-checkpoints, unsafe pickles, foreign classes
        if sub == "fit":  # resuming: the config given is the run's own
            super()._parse_ckpt_path()
            return
        given = flatten(as_dict(cfg["model"]))
        default = flatten(as_dict(self._subcommand_parsers[sub].get_defaults()["model"]))
        super()._parse_ckpt_path()
        cfg = self.config[sub]
        conflicts, runtime = model_conflicts(given, default, flatten(as_dict(cfg["model"])))
        for key, value in runtime.items():
            cfg[f"model.{key}"] = value
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
            kwargs["logger"] = build_loggers(
                tracking, self._name, self._version, self._resume_epoch, subcommand=self.subcommand or "fit"
            )
        return super().instantiate_trainer(**kwargs)

    def _instantiate_trainer(self, config, callbacks):
        if self.subcommand != "fit":  # checkpointing/early stopping only make sense while fitting
            callbacks = [c for c in callbacks if not isinstance(c, (BestCheckpoint, EarlyStop))]
            config = {**config, "enable_checkpointing": False}
        if self.subcommand not in ("test", None):
            callbacks = [c for c in callbacks if not isinstance(c, TestReport)]
        if self.subcommand not in ("predict", None):
            callbacks = [c for c in callbacks if not isinstance(c, PredictionWriter)]
        chosen = config.get("callbacks") or []
        chosen = chosen if isinstance(chosen, list) else [chosen]
        if config.get("enable_progress_bar") is not False and not any(
            isinstance(c, LightningProgressBar) for c in [*chosen, *callbacks]
        ):  # Lightning's bar without v_num, unless the config names a bar or turns it off
            callbacks = [*callbacks, ProgressBar()]
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

    def _prepare_subcommand_parser(self, klass, subcommand: str, **kwargs):
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        if subcommand in ("test", "validate"):
            # Lightning's own results table mixes every source of an OOD set into one accuracy; the test
            # report prints per-source numbers instead (--verbose true brings Lightning's table back)
            parser.set_defaults(verbose=False)
        return parser

    def before_fit(self) -> None:
        """Load and check the data before the trainer touches its loggers: Lightning creates the W&B run
        before it sets the data module up, so an option error found there (a val_size that leaves no
        training images) would otherwise leave an offline W&B run behind. The data module keeps what it
        set up; Lightning's own setup call then finds it done."""
        self.datamodule.prepare_data()
        self.datamodule.setup("fit")

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
        if subcommand == "fit" and self.trainer.is_global_zero:
            _print_fit_summary(self.trainer, self.model)
        if subcommand == "test":
            for cb in self.trainer.callbacks:
                if isinstance(cb, TestReport) and cb.robustness:
                    cb.run_robustness(self.trainer, self.model)


def _print_fit_summary(trainer, model) -> None:
    """After fit: the best checkpoint, its score, the last one, and the stored operating point."""
    ck = trainer.checkpoint_callback
    if ck is None:
        return
    lines = []
    if getattr(ck, "best_model_path", ""):
        score = ck.best_model_score
        shown = f"{float(score):.4f}" if score is not None else "n/a"
        lines.append(f"best checkpoint {ck.best_model_path} ({ck.monitor} = {shown})")
    logged = trainer.callback_metrics
    val = [f"{k} {float(logged[k]):.4f}" for k in ("val/acc", "val/auroc", "val/loss") if k in logged]
    if val:
        lines.append(f"last validation: {', '.join(val)}")
    if getattr(ck, "last_model_path", ""):
        lines.append(f"last checkpoint {ck.last_model_path} (after {trainer.current_epoch} epoch(s))")
    cal = getattr(model, "calibration", None)
    if cal is not None and getattr(model, "val_scores", None) is not None:
        lines.append(f"operating point of the final weights: {cal.describe()}")
    for line in lines:
        print(f"cifake: {line}", file=sys.stderr)


def _own_error(e: BaseException) -> CifakeError | None:
    """The first CifakeError in an exception's cause/context chain, or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, CifakeError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _check_writable(folder: Path, option: str) -> None:
    """Fail before training starts, not after hours, when outputs cannot be written."""
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
    for handler in logging.getLogger("lightning.pytorch").handlers:
        handler.addFilter(_DropTip())
    # testing a checkpoint does not need the fit-time callbacks it mentions
    warnings.filterwarnings(
        "ignore", message=".*callbacks used to create the checkpoint need to be provided.*"
    )
    # a short epoch still logs its epoch means; the per-step notice is not actionable
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    # per-batch notices from torchmetrics when a (sanity-check) batch holds one class only
    warnings.filterwarnings("ignore", message=r".*No (positive|negative) samples in targets.*")
    # torch>=2.10 deprecation inside Lightning's own pytree helper
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated.*")


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
    """fit/validate/test/predict through LightningCLI (console.main routes the other commands here)."""
    from_sys = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    installed, previous = False, None
    if threading.current_thread() is threading.main_thread():
        _Interrupted.seen = False
        previous, installed = signal.signal(signal.SIGINT, _Interrupted.handler), True
    try:
        argv = rewrite_argv(argv)
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
