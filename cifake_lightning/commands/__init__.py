"""Project subcommands beside Lightning's fit/validate/test/predict (each takes its own argv).

Each lives in its own module, imported only when it runs: `cifake models` and `cifake compare` never
load Lightning (tests/test_console.py measures it). Inside a command module the heavy imports follow the
argument parsing, so that `--help` and a bad option answer at once."""

from __future__ import annotations

from importlib import import_module

NAMES = ("data", "models", "explain", "sweep", "report", "compare", "export")


def _runner(name: str):
    def run(argv: list[str]) -> None:
        import_module(f"{__name__}.{name}_cmd").main(argv)

    return run


PROJECT_COMMANDS = {name: _runner(name) for name in NAMES}
