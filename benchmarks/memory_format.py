"""Channels-last vs contiguous (NCHW) memory format, and fp32 vs bf16 autocast, per training step.

Plain training steps (forward, BCE, backward, Adam) on random 32x32 batches, each setting in the same
process one after the other, timed after warm-up steps. ImageClassifier uses channels-last by default
because of these numbers.

    python -m benchmarks.memory_format            # CPU
    python -m benchmarks.memory_format --device cuda
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

#: (registered name, its arguments, batch size)
MODELS = [
    ("conv32x2-dense64x1", {}, 256),
    ("lightweight_cnn_hoc", {}, 256),
    ("attention_cnn", {}, 128),
    ("dualstream_small", {}, 128),
    ("resnet18", {}, 64),
    ("content_energy", {"width": 48}, 256),  # configs/experiments/pubgen_content_scale.yaml's CNN
]


def _rate(
    name: str, kwargs: dict, batch: int, channels_last: bool, bf16: bool, device: str, seconds: float
) -> float:
    from cifake_lightning.models import create_model

    torch.manual_seed(0)
    m = create_model(name, **kwargs).to(device)
    x = torch.rand(batch, 3, 32, 32, device=device)
    if channels_last:
        m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch,), device=device).float()
    opt = torch.optim.Adam(m.parameters())

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            out = m(x)
        loss = F.binary_cross_entropy_with_logits(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seconds", type=float, default=3.0, help="timing window per setting")
    args = ap.parse_args()
    from ._common import markdown_table, record

    rows = []
    for name, kwargs, batch in MODELS:
        r = {
            (cl, bf): _rate(name, kwargs, batch, cl, bf, args.device, args.seconds)
            for cl in (False, True)
            for bf in (False, True)
        }
        rows.append(
            {
                "model": " ".join([name, *(f"{k}={v}" for k, v in kwargs.items())]),
                "batch": batch,
                "NCHW fp32 img/s": r[(False, False)],
                "channels-last fp32": r[(True, False)],
                "channels-last speed-up": r[(True, False)] / r[(False, False)],
                "NCHW bf16": r[(False, True)],
                "channels-last bf16": r[(True, True)],
                "best vs NCHW fp32": max(r.values()) / r[(False, False)],
            }
        )
        print(rows[-1], flush=True)
    record(
        "memory_format", f"memory format and precision per training step, {args.device}", markdown_table(rows)
    )


if __name__ == "__main__":
    main()
