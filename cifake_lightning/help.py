"""Help texts and the help formatter shared by every `cifake` command. Importing it costs nothing (no
Lightning, torch or jsonargparse), so `cifake --help` and `--version` answer at once, and no command module
needs to import cli.py."""

from __future__ import annotations

MAIN_HELP = """cifake: train, test, explain and compare detectors of AI-generated images.

Lightning subcommands: fit, validate, test, predict, e.g.
    cifake fit --config configs/baseline.yaml --data.root /data/cifake
    cifake test --ckpt runs/baseline/version_0/checkpoints/last.ckpt --data configs/data/ood_genset.yaml
Project commands, each with --help:
    cifake data synth|download|prepare|verify|classes    datasets and the decode cache
    cifake models [PATTERN]                              models addressable by name
    cifake explain --ckpt CKPT                           IG, occlusion, Grad-CAM, band-ablation maps
    cifake sweep local|list|check SWEEP.yaml             W&B sweep files, run offline
    cifake report RUNS_DIR                               comparison page of many runs
    cifake compare RESULT_A RESULT_B                     paired test of two detectors on the same images
    cifake export --ckpt CKPT --format onnx|torchscript  the detector (calibrated) as one file
    cifake loso --config C --root R --sources S1 S2 ...  leave one fake source out, for each source"""


TOP_LEVEL = (
    MAIN_HELP
    + """

Options of every Lightning subcommand: cifake fit --help (and validate, test, predict).
Other: cifake --version"""
)


def raw_help():
    """jsonargparse's help formatter with descriptions kept as written (examples stay one per line).

    A function, so that importing this module (for `cifake --help`) does not import jsonargparse."""
    import argparse

    from jsonargparse import DefaultHelpFormatter

    class RawHelp(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
        pass

    return RawHelp
