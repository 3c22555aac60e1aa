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
import csv
import glob
import hashlib
import io
import json
import sys
import warnings
from pathlib import Path

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
    from ..data.layout import IMAGE_EXTENSIONS

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
    from PIL import Image

    from ..data.image_io import ImageDecodeError, ImageWarning, decode_image_bytes, read_image_file

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


def main(argv: list[str]) -> None:
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
    from ..errors import ConfigError

    if args.threshold is not None and not 0.0 < args.threshold < 1.0:
        raise ConfigError("--threshold", f"must be in (0, 1), got {args.threshold}")
    if args.batch_size < 1:
        raise ConfigError("--batch-size", f"must be >= 1, got {args.batch_size}")
    from ..data.image_io import RESIZE_FILTERS

    if args.resize not in RESIZE_FILTERS:
        raise ConfigError("--resize", f"choose from {sorted(RESIZE_FILTERS)}, got {args.resize!r}")
    ckpt = Path(args.ckpt)
    if not ckpt.is_file():
        from ..errors import CheckpointError

        raise CheckpointError("checkpoint file not found", ckpt)

    inputs = expand(args.inputs)  # folders and globs are listed once, for this check and for scoring
    if args.out and args.out != "-":
        from ..utils import check_output_not_input

        check_output_not_input(args.out, "--out", [ckpt] + [f for _, f, _ in inputs if f])
    import numpy as np
    import torch

    from ..models.detector import Detector

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    model = Detector.from_checkpoint(ckpt, map_location=device)
    size = 32  # every data module feeds the models 32x32 images (CachedImageDataModule.image_size)
    cal = model.calibration
    rows: list[dict] = []
    pending: list[tuple[int, object]] = []

    def flush() -> None:
        if not pending:
            return
        x = torch.from_numpy(np.stack([a for _, a in pending])).permute(0, 3, 1, 2)
        with torch.no_grad():
            logit = model(x.to(device).float().div(255)).float().cpu()
        prob = cal.prob(logit)
        for (i, _), z, p in zip(pending, logit.tolist(), prob.tolist()):
            thr = cal.threshold if args.threshold is None else args.threshold
            fake = z >= cal.threshold_logit if args.threshold is None else p >= args.threshold
            rows[i].update(
                logit=float(f"{z:.6g}"),
                p_fake=float(f"{p:.6g}"),
                predicted="fake" if fake else "real",
                threshold=thr,
            )
        pending.clear()

    for given, path, reason in inputs:
        row = {"input": given, "file": str(path) if path else "", "width": "", "height": "", "logit": "",
               "p_fake": "", "predicted": "", "threshold": "", "warning": "", "error": reason}  # fmt: skip
        rows.append(row)
        if path is None:
            continue
        arr, wh, err, warn = _decode(path, size, args.resize)
        row["error"], row["warning"] = err, warn
        if wh:
            row["width"], row["height"] = wh
        if arr is not None:
            pending.append((len(rows) - 1, arr))
            if len(pending) >= args.batch_size:
                flush()
    flush()

    n_ok = sum(1 for r in rows if r["predicted"])
    n_fake = sum(1 for r in rows if r["predicted"] == "fake")
    thr_desc = (
        f"{args.threshold:g} (--threshold)"
        if args.threshold is not None
        else f"{cal.threshold:.4g} ({cal.rule} on validation)"
    )
    text = _render(rows, args.format, ckpt, thr_desc)
    if args.out == "-":
        sys.stdout.write(text)
        dest = "standard output"
    else:
        from ..evaluate.table import checkpoint_key
        from ..utils import write_atomic

        h = hashlib.blake2b(
            "\n".join(r["file"] or r["input"] for r in rows).encode(), digest_size=5
        ).hexdigest()
        out = (
            Path(args.out)
            if args.out
            else Path("results") / checkpoint_key(ckpt) / f"predict-{h}" / f"predictions.{args.format}"
        )
        write_atomic(out, text)
        dest = str(out)
    print(
        f"cifake: scored {n_ok} of {len(rows)} inputs ({n_fake} fake, {n_ok - n_fake} real at P(fake) >= {thr_desc}; "
        f"{len(rows) - n_ok} unreadable, listed with the reason) -> {dest}",
        file=sys.stderr,
    )
    if n_ok == 0:
        raise SystemExit(2)


COLUMNS = [
    "input",
    "file",
    "width",
    "height",
    "logit",
    "p_fake",
    "predicted",
    "threshold",
    "warning",
    "error",
]


def _render(rows: list[dict], fmt: str, ckpt: Path, thr: str) -> str:
    if fmt == "json":
        return json.dumps({"checkpoint": str(ckpt), "threshold": thr, "predictions": rows}, indent=1) + "\n"
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS)
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
