"""Load checkpoints safely (weights_only) and turn every failure into a CheckpointError naming the file."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch
from packaging.version import InvalidVersion, Version

from ..errors import CheckpointError


def read_checkpoint(path: str | Path) -> dict:
    """torch.load with weights_only=True: plain tensors and containers only, never arbitrary code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError("checkpoint file not found", path)
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and head[:1] != b"\x80":
        raise CheckpointError("not a PyTorch checkpoint (neither torch's zip format nor a pickle)", path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refused: it holds objects that are not plain tensors/containers ({str(e).splitlines()[0][:160]}); "
            "only checkpoints written by Lightning/cifake load safely",
            path,
        ) from None
    except Exception as e:  # noqa: BLE001 - a random or damaged file raises anything from KeyError to struct.error
        first = (str(e).splitlines() or [""])[0][:160]
        raise CheckpointError(
            f"not a readable PyTorch checkpoint ({type(e).__name__}: {first})", path
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError("not a Lightning checkpoint (no state_dict)", path)
    version = ckpt.get("pytorch-lightning_version")
    if not isinstance(version, str):
        raise CheckpointError(
            "not a Lightning checkpoint (no 'pytorch-lightning_version' key: it was not written by "
            "`cifake fit` or Lightning's Trainer)",
            path,
        )
    try:
        Version(version)
    except InvalidVersion:
        raise CheckpointError(f"has an unreadable Lightning version {version!r}", path) from None
    check_class_paths(ckpt.get("hyper_parameters", {}), path)
    check_finite_weights(ckpt, path)
    return ckpt


def check_finite_weights(ckpt: dict, path: str | Path) -> None:
    """Refuse a checkpoint whose weights or stored validation scores hold NaN/inf (a diverged run saved
    by an older version): scoring it would call every image one class and rank them at random."""
    stores = {"state_dict": ckpt["state_dict"], "cifake_val_scores": ckpt.get("cifake_val_scores") or {}}
    for store, tensors in stores.items():
        for name, t in tensors.items() if isinstance(tensors, dict) else ():
            if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise CheckpointError(
                    f"{store}[{name!r}] holds NaN or infinite values: the run that saved it diverged, so it "
                    "cannot score images (retrain with a lower learning rate)",
                    path,
                )


#: Classes a checkpoint's saved config may name. Rebuilding a model imports the modules its config names,
#: so a checkpoint from elsewhere could otherwise make `cifake test` import any installed module.
ALLOWED_CLASS_PREFIXES = (
    "cifake_lightning.",
    "torch.optim.",
    "torch.nn.",
    "timm.",
    "lightning.pytorch.cli.",  # LightningCLI's own instantiator and callables
)


def check_class_paths(hparams, path: str | Path) -> None:
    """Refuse a checkpoint whose hyper-parameters name classes outside the project and torch's optimisers."""

    def walk(node, where: str):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("class_path", "_class_path", "_instantiator") and isinstance(v, str):
                    if not v.startswith(ALLOWED_CLASS_PREFIXES):
                        raise CheckpointError(
                            f"refused: its saved config names {v!r} ({where}{k}); only cifake_lightning, "
                            "torch.optim/torch.nn, timm and Lightning classes are rebuilt from checkpoints",
                            path,
                        )
                walk(v, f"{where}{k}.")
        elif isinstance(node, list | tuple):
            for i, v in enumerate(node):
                walk(v, f"{where}{i}.")

    walk(hparams, "hyper_parameters.")
