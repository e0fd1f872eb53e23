"""Benchmarks: `python -m bench.NAME` runs one, `python -m bench` runs them all.

Each prints one JSON object per figure, with the settings used. They assert nothing about time;
BENCHMARKS.md holds the figures of a real run. `--tiny` runs each at a size that only shows it
still works (what CI does).
"""
