"""`cifake predict --ckpt CKPT INPUT...`: score the files, folders and globs a user points at.

    cifake predict --ckpt runs/baseline/version_0/checkpoints/best-epoch07.ckpt photo.png shots/ 'web/*.webp'
    cifake predict --ckpt best.ckpt --format json --out scores.json dir/

One row per input image, in the order given (folders: their image files, recursively, sorted; globs:
their matches, sorted), unreadable ones included with the reason. Each row has the calibrated P(fake),
the decision at the checkpoint's validation-chosen threshold (or --threshold), the threshold itself,
the image's original size, and a warning when the image had to be reduced a lot (more than 2x) or
centre-cropped to the model's square input: generator traces are fine detail, and reducing an image
removes them, so such scores say less. Without --out the file goes to
results/<checkpoint>/predict-<inputs hash>/predictions.<format>; `--out -` prints it.

This path needs no data module or Lightning trainer (so one image is scored in seconds); use
`cifake predict --data ...` for a whole data set on several GPUs.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.image_io import (
    RESIZE_FILTERS,
    ImageDecodeError,
    ImageWarning,
    decode_image_bytes,
    read_image_file,
)
from ..data.layout import IMAGE_EXTENSIONS
from ..errors import CheckpointError, ConfigError, check_choice
from ..evaluate.table import PredictionTable, checkpoint_key
from ..models.detector import Detector
from ..utils import check_output_not_input, write_atomic

#: reductions above this factor get a warning in the row
WARN_FACTOR = 2.0


def wanted(argv: list[str]) -> bool:
    """True when a `cifake ...` command line is a predict on files/folders/globs (no data module)."""
    if argv[:1] != ["predict"] or any(a.startswith(("--data", "-c", "--config")) for a in argv):
        return False
    return has_inputs(argv[1:])


def has_inputs(args: list[str]) -> bool:
    """True when `cifake predict ...` names files/folders/globs as positional arguments (not options or
    their values), i.e. when this command, not LightningCLI's predict, should run."""
    prev = None
    for tok in args:
        if not tok.startswith("-") and not (prev and prev.startswith("--") and "=" not in prev):
            return True
        prev = tok
    return False


def expand(inputs: list[str]) -> list[tuple[str, Path | None, str]]:
    """(input as given, file or None, reason when None) for every image the inputs name, in order."""
    out: list[tuple[str, Path | None, str]] = []
    for given in inputs:
        p = Path(given).expanduser()
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                out.append((given, None, "folder holds no image files"))
            out += [(given, f, "") for f in files]
        elif p.exists():
            out.append((given, p, ""))
        elif glob.has_magic(given):
            files = sorted(Path(f) for f in glob.glob(str(p), recursive=True) if Path(f).is_file())
            if not files:
                out.append((given, None, "pattern matches no file"))
            out += [(given, f, "") for f in files]
        else:
            out.append((given, None, "no such file or folder"))
    return out


def _decode(path: Path, size: int, resize: str):
    """(uint8 HxWx3 array or None, (width, height) or None, error, warning)."""
    try:  # the file is read once: decoded, and its header asked for the original size
        data = read_image_file(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ImageWarning)
            arr = decode_image_bytes(data, path, size=size, resize=resize)
    except ImageDecodeError as e:
        return None, None, str(e).split(": ", 1)[-1], ""
    with Image.open(io.BytesIO(data)) as img:  # decoded above, so the header is readable
        w, h = img.size
        if img.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # EXIF orientation: rotated by 90 degrees
            w, h = h, w
    warn = [str(c.message).split(": ", 1)[-1] for c in caught if issubclass(c.category, ImageWarning)]
    factor = min(w, h) / size
    if factor > WARN_FACTOR:
        warn.append(f"reduced {factor:.1f}x from {w}x{h} to {size}x{size}: fine generator traces are lost")
    elif factor < 1:
        warn.append(f"enlarged from {w}x{h} to {size}x{size}: interpolation adds its own traces")
    if w != h:
        warn.append(f"centre-cropped to a square ({min(w, h)}x{min(w, h)} of {w}x{h})")
    return arr, (w, h), "", "; ".join(warn)


def _args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="cifake predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("inputs", nargs="+", help="image files, folders (recursive) and glob patterns")
    ap.add_argument(
        "--ckpt", "--ckpt_path", dest="ckpt", required=True, help="checkpoint written by cifake fit"
    )
    ap.add_argument("--format", choices=("csv", "json"), default="csv")
    ap.add_argument("--out", default=None, help="output file ('-' = standard output)")
    ap.add_argument(
        "--threshold", type=float, default=None, help="P(fake) threshold (default: the checkpoint's)"
    )
    ap.add_argument(
        "--resize", default="area", help="how other sizes reach the model's input (area, bilinear, ...)"
    )
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    args = ap.parse_args(argv)
    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise ConfigError("--threshold", f"must be in (0, 1), got {args.threshold}")
    if args.batch_size < 1:
        raise ConfigError("--batch-size", f"must be >= 1, got {args.batch_size}")
    check_choice("--resize", args.resize, sorted(RESIZE_FILTERS))
    if not Path(args.ckpt).is_file():
        raise CheckpointError("checkpoint file not found", args.ckpt)
    return args


def score(inputs: list[tuple[str, Path | None, str]], ckpt: Path, args) -> tuple[PredictionTable, dict]:
    """The table of the readable inputs (one manifest row per input, in order) and the extra columns
    (input, width, height, warning, error) of every row."""
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    model = Detector.from_checkpoint(ckpt, map_location=device)
    size = 32  # every data module feeds the models 32x32 images (CachedImageDataModule.image_size)
    extra = {k: [""] * len(inputs) for k in ("input", "width", "height", "warning", "error")}
    scored, logits, pending = [], [], []

    def flush() -> None:
        if pending:
            x = torch.from_numpy(np.stack(pending)).permute(0, 3, 1, 2)
            with torch.no_grad():
                logits.append(model(x.to(device).float().div(255)).float().cpu())
            pending.clear()

    for row, (given, path, reason) in enumerate(inputs):
        extra["input"][row], extra["error"][row] = given, reason
        if path is None:
            continue
        arr, wh, extra["error"][row], extra["warning"][row] = _decode(path, size, args.resize)
        if wh:
            extra["width"][row], extra["height"][row] = wh
        if arr is not None:
            scored.append(row)
            pending.append(arr)
            if len(pending) >= args.batch_size:
                flush()
    flush()
    names = list(dict.fromkeys(g for g, _, _ in inputs))
    table = PredictionTable.of(
        torch.cat(logits) if logits else torch.zeros(0),
        torch.full((len(inputs),), -1),
        torch.tensor([names.index(g) for g, _, _ in inputs]),
        tuple(names),
        files=tuple(str(f) if f else "" for _, f, _ in inputs),
        calibration=model.calibration,
        index=torch.tensor(scored, dtype=torch.long),
        data="files",
        root=str(Path.cwd()),
    )
    return table, extra


def main(argv: list[str]) -> None:
    args = _args(argv)
    ckpt = Path(args.ckpt)
    inputs = expand(args.inputs)  # folders and globs are listed once, for this check and for scoring
    if args.out and args.out != "-":
        check_output_not_input(args.out, "--out", [ckpt] + [f for _, f, _ in inputs if f])
    table, extra = score(inputs, ckpt, args)
    thr_desc = (
        f"{args.threshold:g} (--threshold)"
        if args.threshold is not None
        else f"{table.threshold:.4g} ({table.calibration.rule} on validation)"
    )
    if args.format == "json":
        rows = [  # numbers as JSON numbers
            {k: float(v) if k in ("logit", "p_fake", "threshold") and v != "" else v for k, v in r.items()}
            for r in table.rows(args.threshold, extra)
        ]
        text = (
            json.dumps({"checkpoint": str(ckpt), "threshold": thr_desc, "predictions": rows}, indent=1) + "\n"
        )
    else:
        text = table.to_csv(args.threshold, extra)
    if args.out == "-":
        sys.stdout.write(text)
        dest = "standard output"
    else:
        h = hashlib.blake2b(
            "\n".join(str(f) if f else g for g, f, _ in inputs).encode(), digest_size=5
        ).hexdigest()
        out = Path(
            args.out or Path("results") / checkpoint_key(ckpt) / f"predict-{h}" / f"predictions.{args.format}"
        )
        dest = str(write_atomic(out, text))
    n_fake = int((table.decision if args.threshold is None else table.prob >= args.threshold).sum())
    print(
        f"cifake: scored {len(table)} of {len(inputs)} inputs ({n_fake} fake, {len(table) - n_fake} real at "
        f"P(fake) >= {thr_desc}; {len(inputs) - len(table)} unreadable, listed with the reason) -> {dest}",
        file=sys.stderr,
    )
    failed = [(path or given, err) for (given, path, _), err in zip(inputs, extra["error"]) if err]
    for name, err in failed[:5]:
        print(f"cifake: unreadable: {name}: {err}", file=sys.stderr)
    if len(failed) > 5:
        print(
            f"cifake: ... and {len(failed) - 5} more unreadable inputs (see the error column)",
            file=sys.stderr,
        )
    if len(table) == 0:
        raise SystemExit(2)
