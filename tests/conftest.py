"""Keeps the developer's own environment out of the tests (like harlequin's no_discovered_config)."""

import os

import pytest


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("SCHOOLGATE_"):
            monkeypatch.delenv(key)
    # The command line speaks the language of LC_ALL / LC_MESSAGES / LANG: the tests start from none
    # (C.UTF-8 keeps child processes on UTF-8 and means "no language", so zh_CN).
    for key in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    monkeypatch.chdir(tmp_path)


#: The modules whose tests take longest (pytest prints the slowest 25 each run), run first. pytest-xdist's
#: worksteal hands each worker a contiguous half of the collection and lets an idle worker take tests from
#: the end of the other's: with the long ones first, what is left to share at the end are short tests,
#: not a 50-second one starting as the other worker runs out. Modules move whole (their fixtures set up once).
SLOW_FIRST = (
    "tests/central/test_openapi.py",
    "tests/integration/test_chaos.py",
    "tests/integration/test_clocks.py",
    "tests/central/test_role_matrix.py",
    "tests/test_install_doc.py",
    "tests/bench/test_benchmarks_run.py",
    "tests/integration/test_whole_path.py",
    "tests/integration/test_pages_axe.py",
    "tests/integration/test_probes.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(SLOW_FIRST)))  # stable: the rest keep their order
