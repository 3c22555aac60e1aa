"""`cifake export --ckpt CKPT --format onnx|torchscript`: a detector as one file for other runtimes.

    cifake export --ckpt runs/baseline/version_0/checkpoints/best-epoch07.ckpt --format onnx
    cifake export --ckpt best.ckpt --format torchscript --out detector.pt

The exported graph takes float images in [0, 1], shape (batch, 3, 32, 32), any batch size, and returns
`logit` (raw), `p_fake` (calibrated as fitted on validation) and `is_fake` (the decision at the
checkpoint's validation-chosen threshold): it is the checkpoint's Detector (models/detector.py: input
normalisation, any preprocessing such as NPR, the backbone) with its calibration inside. The threshold, calibration and checkpoint path are also stored as ONNX
metadata / TorchScript attributes. After writing, the export is run on a batch of random images and
compared with PyTorch (onnxruntime for ONNX; needs the `export` extra); a difference over 1e-4 stops
with exit 2. Models that cannot be exported: `frequency: fft` dual-stream models (the ONNX exporter
has no FFT; use dct or dct8). A checkpoint trained with torch.compile exports as any other: compilation
is not part of the weights, and the Detector is built uncompiled.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from ..errors import CheckpointError, ConfigError
from ..utils import check_output_not_input

TOLERANCE = 1e-4


def build_wrapper(detector):
    """nn.Module: images in [0, 1] -> (logit, calibrated p_fake, is_fake): the Detector with its
    calibration as buffers (tracing reads tensors, not the Calibration object)."""
    import torch
    from torch import nn

    cal = detector.calibration

    class Exported(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.detector = detector
            self.register_buffer("scale", torch.tensor(float(cal.scale)))
            self.register_buffer("bias", torch.tensor(float(cal.bias)))
            self.register_buffer("threshold_logit", torch.tensor(float(cal.threshold_logit)))

        def forward(self, image: torch.Tensor):
            logit = self.detector(image).float()
            p_fake = torch.sigmoid(logit * self.scale + self.bias)
            return logit, p_fake, logit >= self.threshold_logit

    return Exported().eval()


def export(
    ckpt: str | Path, fmt: str, out: str | Path | None = None, check: bool = True
) -> tuple[Path, float]:
    """Export a checkpoint; returns (path, max |difference| from PyTorch on a random batch, or nan)."""
    from ..models.detector import Detector

    if fmt not in ("onnx", "torchscript"):
        raise ConfigError("--format", f"choose onnx or torchscript, got {fmt!r}")
    model = Detector.from_checkpoint(ckpt)
    why = _not_exportable(model)
    if why:
        raise ConfigError("export", f"{Path(ckpt).name}: {why}")
    out = Path(out) if out else Path(ckpt).with_suffix(".onnx" if fmt == "onnx" else ".ts.pt")
    check_output_not_input(out, "--out", [ckpt])
    return export_module(model, fmt, out, str(ckpt), check)


def export_module(
    model, fmt: str, out: str | Path, source: str = "", check: bool = True
) -> tuple[Path, float]:
    """Export a Detector (see module docstring) to `out`, then check it against PyTorch."""

    import torch

    model = model.eval()
    cal = model.calibration
    wrapper = build_wrapper(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    tmp = out.with_name(out.name + ".tmp")
    meta = {
        "checkpoint": source,
        "input": "float32 (batch, 3, 32, 32) RGB in [0, 1]",
        "threshold_p_fake": f"{cal.threshold:.9g}",
        "threshold_rule": cal.rule,
        "calibration": cal.method,
    }
    with torch.no_grad():
        ref = wrapper(x)
    if fmt == "onnx":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper, (x,), str(tmp), input_names=["image"], output_names=["logit", "p_fake", "is_fake"],
                dynamic_axes={"image": {0: "batch"}, "logit": {0: "batch"}, "p_fake": {0: "batch"},
                              "is_fake": {0: "batch"}},
                dynamo=False, opset_version=17,
            )  # fmt: skip
        import onnx

        proto = onnx.load(str(tmp))
        for k, v in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = k, v
        onnx.save(proto, str(tmp))
    else:
        traced = torch.jit.trace(wrapper, (x,), check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={f"{k}.txt": v for k, v in meta.items()})
    tmp.replace(out)
    diff = math.nan
    if check:
        got = run_export(out, x.numpy() if fmt == "onnx" else x, fmt)
        diff = max(float(abs(torch.as_tensor(g).float() - r.float()).max()) for g, r in zip(got[:2], ref[:2]))
        same = bool((torch.as_tensor(got[2]).bool() == ref[2]).all())
        if not diff <= TOLERANCE or not same:
            raise ConfigError(
                "export",
                f"{out} differs from PyTorch by {diff:.3g} (tolerance {TOLERANCE}); the file was kept",
            )
    return out, diff


def run_export(path: str | Path, x, fmt: str | None = None):
    """Run an exported file on a batch: ONNX through onnxruntime, TorchScript through torch.jit (the
    format as exported; without it, guessed from the suffix)."""
    path = Path(path)
    if (fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")) == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "export", "onnxruntime is not installed: pip install 'cifake-lightning[export]'"
            ) from None
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {"image": x})
    import torch

    with torch.no_grad():
        return torch.jit.load(str(path))(x)


def _not_exportable(model) -> str | None:
    backbone = model.backbone
    if any(type(m).__name__ == "FrequencyTransform" and m.kind == "fft" for m in backbone.modules()):
        return "its frequency stream uses the FFT, which the ONNX exporter does not support; use dct or dct8"
    return None


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(
        prog="cifake export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--ckpt", "--ckpt_path", dest="ckpt", required=True)
    ap.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    ap.add_argument("--out", default=None, help="output file (default: next to the checkpoint)")
    ap.add_argument("--no-check", action="store_true", help="skip the parity check against PyTorch")
    args = ap.parse_args(argv)

    if not Path(args.ckpt).is_file():
        raise CheckpointError("checkpoint file not found", args.ckpt)
    out, diff = export(args.ckpt, args.format, args.out, check=not args.no_check)
    checked = "" if args.no_check else f"; matches PyTorch within {diff:.2g} on a test batch"
    print(f"cifake: exported {args.ckpt} as {args.format} -> {out}{checked}", file=sys.stderr)
