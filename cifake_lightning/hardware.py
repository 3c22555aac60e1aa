"""What the hardware supports natively, and the training precision chosen from it (`precision: auto`).

bf16 autocast pays only where the hardware computes bf16 natively: on CUDA GPUs that support it, and on
CPUs with AVX512-BF16 or AMX. Elsewhere PyTorch emulates it, and bf16-mixed runs slower than fp32 (0.6x
on an AVX2-only 2-core machine: benchmarks/results/throughput.md). The default precision is therefore
chosen per machine: bf16-mixed with native bf16, 16-mixed on CUDA GPUs without it, else 32-true.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_native_bf16() -> bool:
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def auto_precision() -> tuple[str, str]:
    """(Lightning precision, reason) for the device Lightning's `accelerator: auto` will pick."""
    if torch.cuda.is_available():
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"{torch.cuda.get_device_name(0)} computes bf16 natively"
        return "16-mixed", f"{torch.cuda.get_device_name(0)} has no native bf16"
    if cpu_native_bf16():
        feats = "/".join(sorted({"avx512_bf16", "amx_bf16"} & cpu_flags()))
        return "bf16-mixed", f"this CPU computes bf16 natively ({feats})"
    return "32-true", "this CPU has no native bf16 (no AVX512-BF16 or AMX): bf16 would be emulated and slower"
