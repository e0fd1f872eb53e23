"""The package arrows of the design hold: `lint-imports` checks the contracts in pyproject.toml."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    found = Path(sys.executable).with_name("lint-imports")
    return str(found) if found.exists() else shutil.which("lint-imports")


def test_import_contracts_are_kept():
    result = subprocess.run([_lint_imports(), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("package", "planted_import"),
    [("gateway", "kiosk.engine"), ("i18n", "central.core.errors")],
    ids=["gateway imports kiosk", "the catalogue imports central"],
)
def test_a_broken_arrow_is_caught(tmp_path, package, planted_import):
    """The contracts bite: a copy of a package that imports one it must not breaks one (the plant-the-bug check)."""
    for name in ("hardware", "kiosk", "gateway", "central", "schoolgate", "i18n"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    planted = tmp_path / package / "planted.py"
    planted.write_text(f"import {planted_import}\n", encoding="utf-8")
    result = subprocess.run([_lint_imports(), "--config", str(tmp_path / "pyproject.toml")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode != 0, result.stdout
    assert f"{package}.planted -> {planted_import}" in result.stdout
