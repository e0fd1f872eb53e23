"""Keeps the developer's own environment out of the tests (like harlequin's no_discovered_config)."""

import os

import pytest


@pytest.fixture(autouse=True)
def _no_user_environment(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("SCHOOLGATE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
