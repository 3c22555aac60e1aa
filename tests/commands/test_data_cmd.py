"""commands/data_cmd.py: `cifake data` answers bad options without torch."""

from __future__ import annotations

import time

from helpers.run import REPO


def test_data_synth_bad_option_answers_without_loading_torch():
    import subprocess
    import sys

    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", "import sys; sys.argv=['cifake','data','synth','--n','5'];"
                        "from cifake_lightning.console import main; main()"],
                       capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert r.returncode == 2 and "ambiguous option" in r.stderr
    assert time.perf_counter() - t0 < 5
