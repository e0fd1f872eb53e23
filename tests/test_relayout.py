"""scripts/dev/relayout.py: central's modules move into domain packages and every reference follows.

The script is meant to run on main after other branches are merged, so it is tested here on
hand-written text and on a small repository made for the test, never on this tree.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "dev" / "relayout.py"


def _load():
    spec = importlib.util.spec_from_file_location("relayout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["relayout"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


relayout = _load()


@pytest.fixture
def rewrite():
    rewriter = relayout.Rewriter(relayout.Mapping(dict(relayout.MOVES)))
    return lambda text: rewriter.rewrite(text, "test")


CASES = [
    # `from central import ...`: local names kept, one statement per package
    ("from central import accounts\n", "from central.accounts import access as accounts\n"),
    ("from central import staff as staff_service\n", "from central.programme import staff as staff_service\n"),
    ("from central import enrollment, groups, roster, schedule, services\n",
     "from central.kiosks import roster, services\nfrom central.programme import enrollment, groups, schedule\n"),
    ("from central import accounts, audit\n", "from central.accounts import access as accounts\nfrom central.core import audit\n"),
    ("from central import admin, pickup\n", "from central import admin\nfrom central.pickup import codes as pickup\n"),
    ("from central import (\n    importer,\n    roster as r,\n)\n", "from central.imports import importer\nfrom central.kiosks import roster as r\n"),
    # a package's own later module (the tables divided among the domains) is the new form, left alone
    ("from central.accounts.models import User\nimport central.pickup.models\n",
     "from central.accounts.models import User\nimport central.pickup.models\n"),
    # a lazy import inside a function keeps its indentation and its comment
    ("def f():\n    from central import pickup  # here: light\n    return pickup\n",
     "def f():\n    from central.pickup import codes as pickup  # here: light\n    return pickup\n"),
    # `from central.x import`, `import central.x`, dotted uses, strings, -m, paths
    ("from central.models import School\n", "from central.core.models import School\n"),
    ("from central.accounts import Principal, Role\n", "from central.accounts.access import Principal, Role\n"),
    ("import central.pickup  # noqa: F401\n", "import central.pickup.codes  # noqa: F401\n"),
    ("x = central.accounts.Role.GUARD\n", "x = central.accounts.access.Role.GUARD\n"),
    ('monkeypatch.setattr("central.pickup._utcnow", now)\n', 'monkeypatch.setattr("central.pickup.codes._utcnow", now)\n'),
    ('logging.getLogger("central.ingest")\n', 'logging.getLogger("central.kiosks.ingest")\n'),
    ("python -m central.ingest\n", "python -m central.kiosks.ingest\n"),
    ("the chain (central/audit.py) and `central.bus.Bus`\n", "the chain (central/core/audit.py) and `central.kiosks.bus.Bus`\n"),
    # left alone: other modules of the same names, files, hosts, modules that stay
    ("from central.api.routes import pickup, public\n", "from central.api.routes import pickup, public\n"),
    ("central/api/routes/public.py tests/central/test_pickup.py\n", "central/api/routes/public.py tests/central/test_pickup.py\n"),
    ('"central.sqlite3", "central.school.lan", central.api.deps\n', '"central.sqlite3", "central.school.lan", central.api.deps\n'),
    ("from central.admin import open_db\nfrom central import main\n", "from central.admin import open_db\nfrom central import main\n"),
    # already moved: the new forms stay as they are
    ("from central.accounts import access as accounts\n", "from central.accounts import access as accounts\n"),
    ("from central.pickup import codes\nimport central.pickup.codes\n", "from central.pickup import codes\nimport central.pickup.codes\n"),
    ("from central.core.models import School\n", "from central.core.models import School\n"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_rewrite(rewrite, text, expected):
    assert rewrite(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_a_second_rewrite_changes_nothing(rewrite, text, expected):
    assert rewrite(expected) == expected


# --- a small repository --------------------------------------------------------------------

FILES = {
    "central/__init__.py": "",
    "central/core/__init__.py": "",
    "central/models.py": "class School:\n    name = 'model'\n",
    "central/accounts.py": (
        "from central.models import School\n\n"
        "def who():\n    from central import pickup  # lazy, like the real one\n    return 'accounts', pickup.WHAT\n"
    ),
    "central/pickup.py": "from central import accounts\n\nWHAT = 'pickup'\n",
    "central/cards.py": "def canonical_card(text):\n    return text.upper()\n",
    "central/staff.py": "from central.cards import canonical_card\n",
    "central/main.py": (
        "from central import accounts, staff as staff_service\n"
        "import central.pickup\n\n"
        "def run():\n    return accounts.who(), central.pickup.WHAT, staff_service.canonical_card('ab')\n"
    ),
    "central/clock.py": "NOW = 0\n",
    "tests/test_it.py": 'TARGET = "central.pickup.WHAT"  # see central/pickup.py\n',
    "wip/old.patch": "--- a/central/pickup.py\n",
    "README.md": "# x\n\n## Layout\n\n| package | what |\n| --- | --- |\n| `central/` | all |\n\nMore.\n",
    "pyproject.toml": "[tool.importlinter]\nroot_packages = [\"central\"]\n",
}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--root", str(root), *args], capture_output=True, text=True, timeout=60)


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in root.rglob("*") if p.is_file() and ".git" not in p.parts}


@pytest.fixture
def repo(tmp_path):
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "flat")
    return tmp_path


def test_check_says_what_it_would_do_and_changes_nothing(repo):
    before = _snapshot(repo)
    result = _run(repo, "--check")
    assert result.returncode == 1
    assert "would git mv central/accounts.py central/accounts/access.py" in result.stdout
    assert _snapshot(repo) == before


def test_the_move_imports_and_runs_and_a_second_run_does_nothing(repo):
    result = _run(repo)
    assert result.returncode == 0, result.stderr
    assert "central/clock.py is not placed in a package" in result.stderr
    for gone in ("central/accounts.py", "central/pickup.py", "central/models.py", "central/cards.py", "central/staff.py"):
        assert not (repo / gone).exists()
    assert (repo / "central/accounts/__init__.py").read_text() == ""
    assert (repo / "central/pickup/codes.py").read_text() == (
        "from central.accounts import access as accounts\n\nWHAT = 'pickup'\n"
    )
    assert (repo / "central/accounts/access.py").read_text() == (
        "from central.core.models import School\n\n"
        "def who():\n    from central.pickup import codes as pickup  # lazy, like the real one\n    return 'accounts', pickup.WHAT\n"
    )
    assert (repo / "central/main.py").read_text() == (
        "from central.accounts import access as accounts\nfrom central.programme import staff as staff_service\n"
        "import central.pickup.codes\n\n"
        "def run():\n    return accounts.who(), central.pickup.codes.WHAT, staff_service.canonical_card('ab')\n"
    )
    assert (repo / "tests/test_it.py").read_text() == 'TARGET = "central.pickup.codes.WHAT"  # see central/pickup/codes.py\n'
    assert (repo / "wip/old.patch").read_text() == "--- a/central/pickup.py\n"
    tracked = _git(repo, "ls-files").split()  # moved and rewritten in git's index, ready to commit
    assert "central/pickup/codes.py" in tracked and "central/pickup.py" not in tracked
    assert _git(repo, "diff", "--name-only") == ""
    readme = (repo / "README.md").read_text()
    assert readme.index("| `central/` | all |") < readme.index("| `central/kiosks/` |") < readme.index("More.")
    assert '    "imports | kiosks",\n    "pickup",\n    "accounts",\n    "programme",\n    "schools",\n' in (repo / "pyproject.toml").read_text()

    env = {**os.environ, "PYTHONPATH": str(repo)}
    ran = subprocess.run([sys.executable, "-c", "import central.main as m; print(m.run())"], cwd=repo, env=env,
                         capture_output=True, text=True, timeout=60)
    assert ran.stdout.strip() == "(('accounts', 'pickup'), 'pickup', 'AB')", ran.stderr

    after = _snapshot(repo)
    again = _run(repo)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert _snapshot(repo) == after
    assert _run(repo, "--check").returncode == 0


def test_an_old_import_brought_back_by_a_late_merge_is_rewritten(repo):
    assert _run(repo).returncode == 0
    (repo / "central/late.py").write_text("from central import pickup\nfrom central.models import School\n")
    _git(repo, "add", "central/late.py")
    assert _run(repo, "--move", "late=kiosks.late", "--move", "clock=core.clock").returncode == 0
    assert (repo / "central/kiosks/late.py").read_text() == (
        "from central.core.models import School\nfrom central.pickup import codes as pickup\n"  # sorted again
    )
    assert (repo / "central/core/clock.py").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("from central.pickup import codes as pickup\nfrom central.core.config import Settings\nfrom central import admin\nx = 1\n",
     "from central import admin\nfrom central.core.config import Settings\nfrom central.pickup import codes as pickup\nx = 1\n"),
    # runs at one indentation each; a parenthesised statement ends a run and stays where it is
    ("def f():\n    from central.programme import staff\n    from central.kiosks import roster\nfrom central.b import (c,\n    d)\nfrom central.a import e\n",
     "def f():\n    from central.kiosks import roster\n    from central.programme import staff\nfrom central.b import (c,\n    d)\nfrom central.a import e\n"),
    ("import central.pickup.codes\nimport central.core.audit\n", "import central.pickup.codes\nimport central.core.audit\n"),
])
def test_sort_imports(text, expected):
    assert relayout.sort_imports(text) == expected
    assert relayout.sort_imports(expected) == expected


@pytest.mark.parametrize("text", [
    "x = 1; from central import pickup\n",  # not at a line's start
    "from central import pickup, \\\n    admin\n",  # continued with a backslash
])
def test_what_it_cannot_rewrite_is_left_and_named(text):
    rewriter = relayout.Rewriter(relayout.Mapping(dict(relayout.MOVES)))
    assert rewriter.rewrite(text, "f.py") == text
    assert [w.startswith("f.py: not rewritten, do it by hand: ") for w in rewriter.warnings] == [True]
