"""Help texts and the help formatter shared by every `cifake` command (no Lightning import here, so
commands that only need help or their own parser start fast, and no command module imports cli.py)."""

from __future__ import annotations

import argparse

from jsonargparse import DefaultHelpFormatter

MAIN_HELP = """cifake: train, test, explain and compare detectors of AI-generated images.

Lightning subcommands (below): fit, validate, test, predict, e.g.
    cifake fit --config configs/baseline.yaml --data.root /data/cifake
    cifake test --ckpt runs/baseline/version_0/checkpoints/last.ckpt --data configs/data/ood_genset.yaml
Project commands, each with --help:
    cifake data synth|download|prepare|verify|classes    datasets and the decode cache
    cifake models [PATTERN]                              models addressable by name
    cifake explain --ckpt CKPT                           IG, occlusion, Grad-CAM, band-ablation maps
    cifake sweep local|list|check SWEEP.yaml             W&B sweep files, run offline
    cifake report RUNS_DIR                               comparison page of many runs
    cifake compare RESULT_A RESULT_B                     paired test of two detectors on the same images"""


class RawHelp(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help, with descriptions kept as written (examples stay one per line)."""
