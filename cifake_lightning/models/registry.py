"""Models addressable by name, timm-style: `@register_model`, `create_model(name, **kw)`, `list_models`."""

from __future__ import annotations

import difflib
import fnmatch
import functools
import inspect
from collections.abc import Callable

from torch import nn

from ..errors import ConfigError

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_PARSERS: list[Callable[[str], Callable[..., nn.Module] | None]] = []


def register_model(name: str | None = None):
    """Decorator: make a class or factory function addressable as `name` (default: its __name__)."""

    def deco(fn):
        key = name or fn.__name__
        if key in _MODELS and _MODELS[key] is not fn:
            raise ValueError(f"model name {key!r} is already registered")
        _MODELS[key] = fn
        return fn

    return deco


def register_name_parser(parser: Callable[[str], Callable[..., nn.Module] | None]) -> None:
    """Register a function that turns names of a parametric family (e.g. conv64x3) into factories."""
    _PARSERS.append(parser)


def _lookup(name: str) -> Callable[..., nn.Module] | None:
    if name in _MODELS:
        return _MODELS[name]
    for parse in _PARSERS:
        fn = parse(name)
        if fn is not None:
            return fn
    return None


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; unknown names raise a ValueError listing close matches."""
    fn = _lookup(name)
    if fn is None:
        close = difflib.get_close_matches(name, list(_MODELS), n=5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError("model name", f"unknown model name {name!r}{hint}; `cifake models` lists them")
    return fn(**kwargs)


def model_spec(name: str) -> dict | None:
    """The class_path/init_args a registered name stands for (what `--model.backbone NAME` becomes).

    Names are registered as classes or as `functools.partial(Class, **fixed_args)`, so every name has
    a config equivalent that a checkpoint can store; None for unknown names.
    """
    fn = _lookup(name)
    args: dict = {}
    while isinstance(fn, functools.partial):
        args = {**fn.keywords, **args}
        fn = fn.func
    if fn is None or not inspect.isclass(fn):
        return None
    spec: dict = {"class_path": f"{fn.__module__}.{fn.__qualname__}"}
    if args:
        spec["init_args"] = args
    return spec


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def find_models(pattern: str) -> list[str]:
    """Names matching a glob; a plain name (no wildcard) also matches parametric names such as
    conv64x2-dense256x1, which are valid without being listed one by one."""
    if not any(c in pattern for c in "*?["):
        return [pattern] if is_registered(pattern) else []
    return list_models(pattern)


def is_registered(name: str) -> bool:
    return _lookup(name) is not None
