"""Reproducible measurements; each script prints a table and appends it to benchmarks/results/."""
