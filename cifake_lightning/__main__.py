"""`python -m cifake_lightning ...` runs the `cifake` command (works from a source tree, no install)."""

from .console import main

main()
