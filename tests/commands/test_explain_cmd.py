"""commands/explain_cmd.py: `cifake explain` options."""

from __future__ import annotations

from helpers.run import run_main


def test_explain_with_zero_images_is_an_option_error(trained_run, capsys):
    code, err = run_main(["explain", "--ckpt", str(trained_run), "--n", "0"], capsys)
    assert code == 2 and "--n" in err and "at least 1" in err


def test_the_explain_configs_parse_as_cifake_explain_options():
    """configs/explain/*.yaml are what `cifake sweep local --explain` passes as `cifake explain --config`."""
    from helpers.run import REPO

    from cifake_lightning.commands.explain_cmd import _parser

    for path in sorted((REPO / "configs" / "explain").glob("*.yaml")):
        cfg = _parser().parse_args(["--config", str(path), "--ckpt", "x.ckpt"])
        assert cfg.n >= 1 and cfg.explain.methods, path
