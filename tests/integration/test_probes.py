"""Issue 11's probes still pass: `python -m bench.probes` with a few of its probes (custody codes,
poison messages, a year-9999 event, a forged roster), run as anyone would run it, on both back-ends:
SQLite with the embedded broker, and PostgreSQL with Mosquitto (the real servers, tests/sgtest.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sgtest import REAL_POSTGRES, require

ROOT = Path(__file__).resolve().parents[2]
SUBSET = "1,3,7,signing"


@pytest.mark.parametrize("backend", ["embedded+sqlite", "mosquitto+postgres"])
def test_the_probes_that_found_issue_11_pass(backend):
    args = []
    if backend == "mosquitto+postgres":
        require("mosquitto", "postgres")
        args = ["--postgres"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env["SG_BENCH_POSTGRES_URL"] = REAL_POSTGRES
    done = subprocess.run(
        [sys.executable, "-m", "bench.probes", "--only", SUBSET, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=240,
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    probes = [r for r in rows if "probe" in r]
    assert {r["probe"] for r in probes} == set(SUBSET.split(",")), done.stdout + done.stderr[-3000:]
    assert [r for r in probes if not r["ok"]] == []
    assert all(r["backend"] == backend for r in probes)
    assert done.returncode == 0 and rows[-1] == {"probes": len(probes), "failed": 0, "ok": True}
