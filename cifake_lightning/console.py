"""Entry point of the `cifake` console script, kept free of heavy imports.

Worker processes started with the spawn method (the decode-cache builder's pool) re-run the parent's
script as `__mp_main__`; pointing the script here instead of at cli.py spares every worker the import
of Lightning and torch (seconds each, which made first-time cache builds twice as slow).
"""


def main(argv: list[str] | None = None) -> None:
    """The `cifake` command: project commands and `predict FILES` here, the rest via cli.main."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if args in (["--version"], ["-V"]):  # answered without importing torch or Lightning
        from . import __version__

        print(f"cifake-lightning {__version__}")
        return
    if args in (["--help"], ["-h"]):
        from .help import TOP_LEVEL

        print(TOP_LEVEL)
        return
    if args and not args[0].startswith("-"):
        from .commands import PROJECT_COMMANDS

        known = ["fit", "validate", "test", "predict", *PROJECT_COMMANDS]
        if args[0] not in known:
            import difflib

            close = difflib.get_close_matches(args[0], known, n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            print(
                f"cifake: error: unknown command {args[0]!r}{hint} (commands: {', '.join(known)}; cifake --help)",
                file=sys.stderr,
            )
            raise SystemExit(2)
    light = None
    from .commands import PROJECT_COMMANDS

    if args[:1] and args[0] in PROJECT_COMMANDS:  # their own parsers answer bad options at once
        light = PROJECT_COMMANDS[args[0]]
    elif args[:1] == ["predict"]:
        from .commands.predict_files import wanted

        if wanted(args):  # files, folders, globs: a plain nn.Module, no Lightning
            from .commands.predict_files import main as light
    if light is not None:
        from .errors import CifakeError

        try:
            light(args[1:])
        except CifakeError as e:
            print(f"cifake: error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("cifake: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except BrokenPipeError:  # `cifake models | head`: the reader left; not an error of ours
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise SystemExit(141) from None
        return
    from .cli import main as cli_main

    cli_main(argv)
