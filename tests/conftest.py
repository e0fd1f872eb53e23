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
