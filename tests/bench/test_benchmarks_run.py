"""Each benchmark still runs, at a tiny size. Figures are not checked: benchmarks assert nothing
about time (BENCHMARKS.md holds the figures of a full run)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHES = ["tap_decision", "ingest", "tap_to_central", "gate_to_gate", "dismissal", "kiosk_memory", "scale_out", "notify", "city", "district", "live_rosters"]


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_runs_at_tiny_size_and_prints_figures(name):
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--tiny"], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert rows and all(row["bench"] == name and "value" in row and "settings" in row for row in rows)


def test_every_benchmark_has_a_tiny_size():
    for name in BENCHES:
        assert isinstance(importlib.import_module(f"bench.{name}").TINY, dict)
