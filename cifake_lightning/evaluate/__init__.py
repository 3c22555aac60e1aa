"""Evaluation: test reports per source, calibration, robustness, and their JSON/Markdown/PNG outputs."""
