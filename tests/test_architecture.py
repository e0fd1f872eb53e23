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


# --- one way for a service to name its school ----------------------------------------------------

DOMAINS = ("schools", "programme", "accounts", "pickup", "imports", "kiosks")
# Written by hand: the only services that take a school's *code*, because they take it as input (README, "Layout").
CODE_TAKERS = {
    "central/schools/registry.py": {"get_school", "check_school", "create_school", "ensure_school"},
    "central/imports/importer.py": {"import_roster"},
    "central/accounts/users.py": {"create_user", "may_manage"},  # may_manage: a pure rule comparing two ids
    # the kiosks' wire: topics and signed HTTP name the school by code; the ingest's hot path, inside one
    # batch, carries the topic's code and writes rows by id
    "central/kiosks/ingest.py": {"ack_message", "_own", "_status", "_kiosk", "_check", "_apply", "event_row"},
    "central/kiosks/roster.py": {"_delta"},
    # the feed topics name a school by code, the live pages' events by id: the bus maps one to the other
    "central/kiosks/bus.py": {"_code", "_id"},
    "central/kiosks/feed.py": {"messages"},  # the feed message names its school by code
    "central/pickup/codes.py": {"authenticate_kiosk"},
}


def school_naming(path: Path, root: Path = ROOT) -> list[str]:
    """Functions of a module that name their school by anything but the ``School`` row."""
    import ast

    rel = path.relative_to(root).as_posix()
    wrong = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef) or node.name in CODE_TAKERS.get(rel, ()):
            continue
        for arg in node.args.args + node.args.kwonlyargs:
            kind = ast.unparse(arg.annotation) if arg.annotation is not None else ""
            if arg.arg in ("school", "school_id", "school_code") and "School" not in kind and kind != "Zoned":
                wrong.append(f"{rel}:{node.lineno} {node.name}({arg.arg}: {kind or '?'})")
    return wrong


def test_every_service_names_its_school_by_the_school_row():
    found = [w for d in DOMAINS for path in sorted((ROOT / "central" / d).rglob("*.py")) for w in school_naming(path)]
    assert found == []


def test_a_service_taking_a_school_id_is_caught(tmp_path):
    """The plant-the-bug check: the old ways (an id, a code) are both found."""
    planted = tmp_path / "central" / "programme" / "planted.py"
    planted.parent.mkdir(parents=True)
    planted.write_text("def list_things(session, *, school_id: int): ...\n\n\ndef show(session, school: str): ...\n")
    assert school_naming(planted, tmp_path) == [
        "central/programme/planted.py:1 list_things(school_id: int)",
        "central/programme/planted.py:4 show(school: str)",
    ]
