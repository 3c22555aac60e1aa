"""`cifake explain`: explanation maps for a trained checkpoint, written as PNG grids and JSON scores.

    cifake explain --ckpt runs/baseline/version_0/checkpoints/last.ckpt                  # its own data, test split
    cifake explain --ckpt ... --data configs/data/genset.yaml --data.root /data/genset --n 32
    cifake explain --ckpt ... --images my_photos/ --explain.methods '[integrated_gradients, occlusion]'

Outputs (results/explain/<run>/<checkpoint stem>-<hash of its bytes>/ unless --out): grid.png (image + one overlay per method and image),
bands.png (frequency-band ablation curve), scores.json (per image: P(fake), IG convergence delta,
entropy/Gini/centre fraction per map, method agreement, band drops), summary.json/.md (means by true label).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace
from lightning import LightningDataModule

from ..data.image_io import load_image_tensor
from ..data.layout import has_image_extension, is_junk
from ..errors import CifakeError, ConfigError, DataError, ImageDecodeError
from ..evaluate.table import file_digest
from ..explain.probe import choose_probe
from ..explain.report import ExplainSettings, explain, write_outputs
from ..help import raw_help
from ..models.detector import Detector


def _parser():
    p = ArgumentParser(prog="cifake explain", description=__doc__, formatter_class=raw_help())
    p.add_argument(
        "--config", action=ActionConfigFile, help="options from a YAML file (e.g. configs/explain/*.yaml)"
    )
    p.add_argument("--ckpt", type=str, required=True, help="checkpoint written by `cifake fit`")
    p.add_argument(
        "--images",
        type=str | None,
        default=None,
        help="folder of images to explain (any size/format; REAL/ and FAKE/ subfolders give labels)",
    )
    p.add_subclass_arguments(
        LightningDataModule,
        "data",
        required=False,
        help="data module config (default: the run's config.yaml beside the checkpoint)",
    )
    p.add_argument("--split", type=str, default="test", help="split of the data module to draw images from")
    p.add_argument("--n", type=int, default=16, help="images to explain (half real, half fake)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_class_arguments(ExplainSettings, "explain")
    p.add_argument(
        "--out",
        type=str | None,
        default=None,
        help="output folder (default results/explain/<run>/<checkpoint>-<hash>)",
    )
    p.add_argument("--device", type=str, default="auto", help="auto, cpu or cuda")
    return p


def _folder_images(folder: Path, n: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    candidates = sorted(
        p for p in folder.rglob("*") if p.is_file() and not is_junk(p.name) and has_image_extension(p)
    )
    files, tensors, skipped = [], [], []
    for f in candidates:  # unreadable files are skipped and named, as `cifake predict` does
        if len(files) == n:
            break
        try:
            tensors.append(load_image_tensor(f, resize="area"))
            files.append(f)
        except ImageDecodeError as e:
            skipped.append(str(e))
    if skipped:
        print(f"cifake: skipped {len(skipped)} unreadable file(s): {'; '.join(skipped[:3])}", file=sys.stderr)
    if not files:
        raise DataError("no readable image files found", folder)
    imgs = torch.stack(tensors)
    labels = torch.tensor(
        [
            1 if "FAKE" in f.relative_to(folder).parts else 0 if "REAL" in f.relative_to(folder).parts else -1
            for f in files
        ]
    )
    return imgs, labels, [str(f.relative_to(folder)) for f in files]


def _run_config_data(ckpt: Path):
    """The data section of config.yaml written next to the checkpoint's run folder, if any."""
    for cand in (ckpt.parent.parent / "config.yaml", ckpt.parent / "config.yaml"):
        if cand.is_file():
            return yaml.safe_load(cand.read_text()).get("data")
    return None


def main(argv: list[str]) -> None:
    parser = _parser()
    cfg = parser.parse_args(argv)
    for option in ("n", "batch_size"):
        if cfg[option] < 1:
            raise ConfigError(f"--{option}", f"must be at least 1, got {cfg[option]}")
    ckpt = Path(cfg.ckpt)
    device = torch.device(
        "cuda"
        if cfg.device == "auto" and torch.cuda.is_available()
        else (cfg.device if cfg.device != "auto" else "cpu")
    )
    model = Detector.from_checkpoint(ckpt, map_location=device)
    settings = ExplainSettings(**{k: v for k, v in vars(cfg.explain).items()})
    if cfg.images:
        images, labels, files = _folder_images(Path(cfg.images), cfg.n)
        source = cfg.images
    else:
        if cfg.get("data") is None:
            data_cfg = _run_config_data(ckpt)
            if data_cfg is None:
                raise CifakeError(
                    f"{ckpt}: no --images or --data given and no config.yaml beside the checkpoint"
                )
            cfg = parser.parse_object({"data": data_cfg}, cfg)
        init = parser.instantiate_classes(Namespace(data=cfg.data)) if not hasattr(cfg.data, "setup") else cfg
        dm = init.data
        dm.progress = False
        dm.setup("test")
        if cfg.split not in dm.split_names:
            raise ConfigError("--split", f"the data module has no {cfg.split!r} split (has {dm.split_names})")
        probe = choose_probe(dm.manifest(cfg.split), dm.images(cfg.split), cfg.n, cfg.seed)
        images, labels, files = probe.images, probe.labels, probe.files
        source = f"{type(dm).__name__} {Path(dm.manifest(cfg.split).root).name} {cfg.split}"
    x = images.to(device).float() / 255.0
    ex = explain(model, x, labels, files, settings, batch_size=cfg.batch_size)
    run = (
        ckpt.parents[2].name + "-" + ckpt.parents[1].name if ckpt.parent.name == "checkpoints" else ckpt.stem
    )
    # keyed like test results: another checkpoint of the run (last vs best) never replaces these maps
    out = (
        Path(cfg.out)
        if cfg.out
        else Path("results") / "explain" / run / f"{ckpt.stem}-{file_digest(ckpt)[:8]}"
    )
    paths = write_outputs(ex, out, settings, title=f"{run} on {source}", ckpt=str(ckpt.resolve()))
    summ = ex.summary()
    for group in ("real", "fake"):
        if group in summ:
            s = summ[group]
            keys = [k for k in s if k.endswith(("centre_fraction", "entropy")) or k == "ig_relative_delta"]
            print(
                f"{group:5s} n={s['n']:3d} "
                + "  ".join(f"{k}={s[k] if s[k] is None else f'{s[k]:.3f}'}" for k in keys)
            )
    print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
