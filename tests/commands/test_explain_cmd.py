"""commands/explain_cmd.py: `cifake explain` options."""

from __future__ import annotations

from helpers.run import run_main


def test_explain_with_zero_images_is_an_option_error(trained_run, capsys):
    code, err = run_main(["explain", "--ckpt", str(trained_run), "--n", "0"], capsys)
    assert code == 2 and "--n" in err and "at least 1" in err
