"""Build the loggers of a run from one `tracking` config section.

W&B is the default. Without an API key (no WANDB_API_KEY, no netrc entry) it runs offline, says so
once, and the run can be uploaded later with `wandb sync runs/<name>/wandb/offline-run-*`. A CSV
logger is always added first, so every run can be compared without W&B (`cifake report` reads it)
and so checkpoints land in ``runs/<name>/version_N/checkpoints``.
"""

from __future__ import annotations

import logging
import netrc
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from ..errors import ConfigError
from .csv_logger import ResumableCSVLogger

log = logging.getLogger(__name__)

_said_offline = False
DEFAULT_PROJECT = "cifake-lightning"


@dataclass
class Tracking:
    """Where runs are logged.

    Attributes:
        save_dir: root of run folders (``<save_dir>/<name>/version_N``).
        wandb: log to Weights & Biases.
        mode: W&B mode: auto (online when an API key is configured, else offline), online, offline, disabled.
        project, entity, group, tags: W&B run placement. W&B's variables WANDB_PROJECT, WANDB_ENTITY,
            WANDB_RUN_GROUP and WANDB_NAME apply where these are left at their defaults.
        log_checkpoints: upload checkpoints to W&B as artifacts (W&B's `log_model`).
        tensorboard: also write TensorBoard event files.
    """

    save_dir: str = "runs"
    wandb: bool = True
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    project: str = DEFAULT_PROJECT
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    log_checkpoints: bool = False
    tensorboard: bool = False


def wandb_api_key_configured() -> bool:
    """True when W&B could authenticate without prompting (env var or ~/.netrc entry)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        rc = netrc.netrc(os.environ.get("NETRC") or None)
        return rc.authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def wandb_reachable(timeout: float = 3.0) -> bool:
    """Whether W&B's server (WANDB_BASE_URL, default api.wandb.ai) accepts a TCP connection within
    `timeout` seconds. The name lookup runs in a thread too: without a network it can block far longer
    than a socket timeout (wandb itself retried for 105 s here before failing with a traceback)."""
    url = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai")
    host, port = url.hostname or "api.wandb.ai", url.port or (80 if url.scheme == "http" else 443)
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, name="wandb-probe", daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def resolve_wandb_mode(mode: str) -> str:
    """The W&B mode a run uses, decided in at most a few seconds.

    auto: WANDB_MODE when set, else online with an API key and offline without. Online (asked for or
    chosen) needs a key and a reachable server; without either the run logs offline, saying so in one
    line, instead of failing after minutes of retries."""
    global _said_offline
    env = os.environ.get("WANDB_MODE")
    if mode == "auto":
        if env in ("online", "offline", "disabled", "dryrun"):
            mode = "offline" if env == "dryrun" else env
        else:
            mode = "online" if wandb_api_key_configured() else "offline"
    if mode == "online":
        why = (
            ""
            if wandb_api_key_configured()
            else "online mode but no API key (WANDB_API_KEY or `wandb login`)"
        )
        if not why and not wandb_reachable():
            why = f"{os.environ.get('WANDB_BASE_URL') or 'api.wandb.ai'} not reachable"
        if why:
            log.warning("W&B: %s: logging offline (upload later with `wandb sync`)", why)
            _said_offline = True
            return "offline"
    return mode


def next_version(run_dir: Path) -> int:
    versions = [
        int(p.name.split("_", 1)[1]) for p in run_dir.glob("version_*") if p.name.split("_", 1)[1].isdigit()
    ]
    return max(versions, default=-1) + 1


#: Version folders this process reserved; `release_empty_versions` removes those a failed run left empty.
_reserved: list[Path] = []


def release_empty_versions() -> None:
    """Remove reserved version folders that stayed empty (the run failed before writing anything but
    the W&B run id it would have used)."""
    while _reserved:
        folder = _reserved.pop()
        try:
            if [p.name for p in folder.iterdir()] == [WANDB_ID_FILE]:
                (folder / WANDB_ID_FILE).unlink()
            folder.rmdir()  # only succeeds when empty
            folder.parent.rmdir()  # the run's folder too, when this was its only version
        except OSError:
            pass


def reserve_version(run_dir: Path) -> int:
    """Create `run_dir/version_N` exclusively and return N, so two runs started together never share one.

    DDP ranks other than zero re-run this command; they take the version rank zero reserved (passed in
    the environment, which Lightning's launcher copies) instead of reserving another.
    """
    inherited = os.environ.get("CIFAKE_RUN_VERSION", "")
    if os.environ.get("LOCAL_RANK", "0") != "0" and inherited.rpartition(":")[0] == f"{run_dir}":
        return int(inherited.rpartition(":")[2])
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError("tracking.save_dir", f"cannot create {run_dir} ({e.strerror or e})") from None
    version = next_version(run_dir)
    while True:
        try:
            (run_dir / f"version_{version}").mkdir()
            _reserved.append(run_dir / f"version_{version}")
            break
        except FileExistsError:
            version += 1
    os.environ["CIFAKE_RUN_VERSION"] = f"{run_dir}:{version}"
    return version


#: W&B job type of each subcommand (W&B's conventions: train / eval / inference)
JOB_TYPES = {"fit": "train", "validate": "eval", "test": "eval", "predict": "inference"}
WANDB_ID_FILE = "wandb_run_id"


def wandb_run_id(version_dir: Path, create: bool) -> str | None:
    """The W&B run id of a fit's version folder: read from its `wandb_run_id` file, or (create=True)
    made and written there, so that `--ckpt_path last` continues the same W&B run instead of a new one."""
    f = Path(version_dir) / WANDB_ID_FILE
    try:
        return f.read_text().strip() or None
    except OSError:
        pass
    if not create:
        return None

    rid = secrets.token_hex(4)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(rid + "\n")
    return rid


def build_loggers(
    tracking: Tracking,
    name: str,
    version: int | None = None,
    resume_epoch: int | None = None,
    subcommand: str = "fit",
) -> list:
    """CSV first (it owns the run folder), then W&B and TensorBoard as configured.

    `resume_epoch` (the last epoch a resumed checkpoint completed) keeps that run's earlier metrics and
    continues its W&B run (same id). A fit's W&B run is `<name>/v<N>` with job type "train"; testing or
    validating a checkpoint of runs/<name>/version_N logs into that version's `<subcommand>/` folder and
    to a W&B run `<name>/v<N>/<subcommand>` (job type "eval") in the same group, so a fit and its tests
    sit together. Predict logs nothing to W&B (its output is the predictions file).
    """
    global _said_offline

    run_dir = Path(tracking.save_dir) / name
    if version is None:
        version = next_version(run_dir)
    fitting = subcommand == "fit"
    csv_version: int | str = version if fitting else f"version_{version}/{subcommand}"
    loggers: list = [
        ResumableCSVLogger(
            save_dir=tracking.save_dir, name=name, version=csv_version, keep_until_epoch=resume_epoch
        )
    ]
    if tracking.wandb and subcommand != "predict":
        mode = resolve_wandb_mode(tracking.mode)
        if mode != "disabled":
            if mode == "offline" and not _said_offline:
                log.warning("W&B: logging offline to %s/wandb (upload later with `wandb sync`)", run_dir)
                _said_offline = True
            os.environ.setdefault("WANDB_SILENT", "true")  # no "anonymous setting" and banner chatter
            wandb_dir = run_dir  # wandb/ beside the version folders (CSV refuses a non-empty version folder)
            wandb_dir.mkdir(parents=True, exist_ok=True)
            version_dir = run_dir / f"version_{version}"
            extra = {}
            if fitting:
                rid = wandb_run_id(version_dir, create=True)
                extra = {"id": rid, "resume": "allow"} if resume_epoch is not None else {"id": rid}
            env = os.environ  # W&B's own variables win over the defaults, as `wandb.init` would let them
            wb = WandbLogger(
                name=env.get("WANDB_NAME") or f"{name}/v{version}" + ("" if fitting else f"/{subcommand}"),
                project=tracking.project
                if tracking.project != DEFAULT_PROJECT
                else env.get("WANDB_PROJECT", DEFAULT_PROJECT),
                entity=tracking.entity or env.get("WANDB_ENTITY"),
                group=tracking.group or env.get("WANDB_RUN_GROUP") or name,
                tags=list(tracking.tags),
                save_dir=str(wandb_dir),
                offline=mode == "offline",
                log_model=tracking.log_checkpoints and fitting,
                job_type=JOB_TYPES.get(subcommand, subcommand),
                **extra,
            )
            # Lightning always passes `anonymous` (None by default), which wandb >= 0.19 answers with a
            # deprecation warning on every run; the run is created lazily, so dropping the key here works
            getattr(wb, "_wandb_init", {}).pop("anonymous", None)
            loggers.append(wb)
    if tracking.tensorboard and subcommand != "predict":
        loggers.append(
            TensorBoardLogger(
                save_dir=tracking.save_dir,
                name=name,
                version=version,
                sub_dir="tb" if fitting else f"tb-{subcommand}",
            )
        )
    return loggers
