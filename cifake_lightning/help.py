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
Research experiments are sweep files (configs/experiments/): cifake sweep local FILE --test CONFIG,
then cifake report runs/<sweep> for the mean ± sd over seeds."""


SUBCOMMAND_HELP = {
    "fit": """Train a detector; checkpoints, metrics and the resolved config go to runs/<name>/version_N/.

Examples:
    cifake fit --config configs/baseline.yaml --data.root data/cifake
    cifake fit --config configs/dualstream.yaml --data configs/data/genset_v2.yaml --trainer.max_epochs 5
    cifake fit --config configs/baseline.yaml --ckpt_path last      # resume the newest run of that name
    cifake fit --config configs/resnet18.yaml --model.backbone vgg11_bn --trainer.precision bf16-mixed
At the end it prints the best checkpoint, its score, and the operating threshold chosen on validation.
Options of a data or model class (train_size, aligned_fakes, ...): cifake fit --data.help CIFAKEDataModule,
cifake fit --model.help RealOnlyDetector.""",
    "validate": """Score a checkpoint on the validation split.

Example:
    cifake validate --ckpt runs/baseline/version_0/checkpoints/last.ckpt --data.root data/cifake""",
    "test": """Score a checkpoint on a test set: per-source metrics at 0.5 and at the validation threshold,
calibration, generalisation summary, galleries; written to results/<run>/version_N/<checkpoint>/<data>/.

Examples:
    cifake test --ckpt runs/baseline/version_0/checkpoints/best-epoch07.ckpt --data.root data/cifake
    cifake test --ckpt best.ckpt --data configs/data/ood_genset_v2.yaml --data.root data/genset-v2 \\
        --report.reference_real test/REAL --report.reference_fake test/FAKE --report.robustness true
    cifake test --ckpt_path best --name baseline          # the newest best-*.ckpt of run baseline
Options of an OOD data class: cifake test --data.help ImageFolderOOD (also CombinedTestData, TinyImageNetReal).""",
    "predict": """Score a data set with a checkpoint (one row per image in predictions.csv). Files, folders
and globs can also be named directly: no data module, one row per input (unreadable ones with the
reason), calibrated P(fake), the validation threshold, --format csv|json, --out FILE.

Examples:
    cifake predict --ckpt best.ckpt photo.png shots/ 'web/*.webp' --format json --out scores.json
    cifake predict --ckpt best.ckpt --data cifake_lightning.data.PredictFolder --data.root shots/
Options when files, folders or globs are named (no data module, no Lightning):
    --ckpt CKPT           checkpoint written by cifake fit (required)
    --threshold P         P(fake) threshold in (0, 1) (default: the checkpoint's validation threshold)
    --format csv|json     output format (default csv)
    --out FILE            output file ('-' = standard output; default results/<checkpoint>/predict-<hash>/)
    --resize METHOD       how other sizes reach the model's input: area (default), bilinear, ...
    --batch-size N        images per batch (default 256)     --device auto|cpu|cuda|cuda:1""",
}


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
