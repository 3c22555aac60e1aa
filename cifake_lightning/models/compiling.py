"""torch.compile options shared by ImageClassifier and GridClassifier.

Models are compiled in place (`nn.Module.compile`), so their state_dict keys and checkpoints are those
of the plain model: a checkpoint trained compiled loads uncompiled and the other way round. Whether
compiling pays off depends on the model and the device: measure with benchmarks/ before relying on it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError

#: accepted values of the `compile` option; "reduce-overhead" captures CUDA graphs on a GPU.
MODES = (False, True, "default", "reduce-overhead", "max-autotune")


def check_compile_mode(value: bool | str, option: str = "model.compile") -> bool | str:
    if value not in MODES:
        raise ConfigError(option, f"must be one of {', '.join(map(str, MODES))}; got {value!r}")
    return value


def compile_in_place(module: nn.Module, mode: bool | str) -> None:
    """Compile `module`'s forward once (a second fit/test on the same object does not wrap it again)."""
    if not mode or getattr(module, "_compiled_call_impl", None) is not None:
        return
    module.compile(mode=None if mode in (True, "default") else mode)


def mark_step(mode: bool | str) -> None:
    """Start a new CUDA-graph generation, so outputs of the previous step may be overwritten safely."""
    if mode == "reduce-overhead" and torch.cuda.is_available():
        torch.compiler.cudagraph_mark_step_begin()
