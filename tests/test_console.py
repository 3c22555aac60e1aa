"""console.py: the `cifake` entry point answers --help, --version and typos without Lightning."""

from __future__ import annotations

from helpers.run import REPO, cifake


def test_top_level_help_and_version_answer_without_torch():
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['cifake', '{flag}']; from cifake_lightning.console import main; main(); "
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    env = {"PYTHONPATH": str(REPO)}
    for flag in ("--help", "--version"):
        r = subprocess.run(
            [sys.executable, "-c", code.format(flag=flag)], capture_output=True, text=True, env=env
        )
        assert r.returncode == 0 and r.stdout.strip().endswith("False False"), r.stderr
    from cifake_lightning import __version__
    from cifake_lightning.commands import PROJECT_COMMANDS
    from cifake_lightning.help import TOP_LEVEL

    assert all(f"cifake {name}" in TOP_LEVEL for name in PROJECT_COMMANDS)  # the help lists every command
    r = subprocess.run(
        [sys.executable, "-c", code.format(flag="--version")], capture_output=True, text=True, env=env
    )
    assert r.stdout.startswith(f"cifake-lightning {__version__}")


def test_misspelt_command_suggests_the_right_one(tmp_path):
    r = cifake("explian", cwd=tmp_path)
    assert r.returncode == 2
    assert "did you mean 'explain'?" in r.stderr and "Traceback" not in r.stderr
    r = cifake("zzzz", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'zzzz'" in r.stderr and "did you mean" not in r.stderr


def test_models_and_predict_files_do_not_import_lightning(tmp_path):
    """Issue 25: `cifake models` reads the registry itself (no generated index) and, like `predict FILES`,
    imports torch and the model files but not Lightning, nor torchmetrics (4.7 s of import: it loads
    torchvision's models)."""
    import subprocess
    import sys

    from helpers.run import REPO

    from cifake_lightning.models.registry import list_models

    code = (
        "import sys; from cifake_lightning.console import main; sys.argv = ['cifake', 'models', 'conv*']; main(); "
        "import cifake_lightning.commands.predict_files, cifake_lightning.models.detector, "
        "cifake_lightning.evaluate.table; "
        "assert 'lightning' not in sys.modules and 'lightning.pytorch' not in sys.modules, 'Lightning imported'; "
        "assert 'torchmetrics' not in sys.modules, 'torchmetrics imported'"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [n for n in list_models() if n.startswith("conv")]
