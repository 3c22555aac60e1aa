"""Project subcommands beside Lightning's fit/validate/test/predict (each takes its own argv)."""

from __future__ import annotations


def _data(argv):
    from .data_cmd import main

    main(argv)


def _models(argv):
    from .models_cmd import main

    main(argv)


def _explain(argv):
    from .explain_cmd import main

    main(argv)


def _sweep(argv):
    from .sweep_cmd import main

    main(argv)


def _report(argv):
    from .report_cmd import main

    main(argv)


def _compare(argv):
    from .compare_cmd import main

    main(argv)


def _export(argv):
    from .export_cmd import main

    main(argv)


PROJECT_COMMANDS = {
    "data": _data,
    "models": _models,
    "explain": _explain,
    "sweep": _sweep,
    "report": _report,
    "compare": _compare,
    "export": _export,
}
