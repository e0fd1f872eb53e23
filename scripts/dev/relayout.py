#!/usr/bin/env python3
"""Move central's flat modules into domain packages (issue 12) and rewrite every reference to them.

    python scripts/dev/relayout.py            # from the repository root: move, rewrite, write the contracts
    python scripts/dev/relayout.py --check    # say what it would change; exit 1 if anything, 0 if the tree is moved
    python scripts/dev/relayout.py --move clock=core.clock   # place a module this script does not know yet

Meant to run on main after the branches that edit central's modules are merged, so a hand-made move
never conflicts with them. It is idempotent: on a tree already moved it changes nothing, and on a
tree where a late merge brought back an old import (``from central import pickup``) it rewrites
only that.

What it does, in order:

1. ``git mv central/<old>.py central/<package>/<module>.py`` for every entry of ``MOVES`` whose old
   file is there (and adds the package's empty ``__init__.py``). Files move whole; none is split.
2. Rewrites every tracked text file but ``wip/`` (old patches), this script and its test:
   ``from central import x`` / ``x as y`` / ``a, b`` (one statement per target package, local names
   kept, so ``accounts.login(...)`` still reads the same), ``from central.x import …``,
   ``import central.x``, dotted uses ``central.x.name`` in code and strings (monkeypatch targets,
   logger names, ``-m central.x``), and paths ``central/x.py`` in docs and comments.
3. Writes central's own import-linter contracts into ``pyproject.toml`` (between the
   ``# >>> central's own contracts`` markers) and the table of central's packages into the README's
   "Layout" section (between ``<!-- central-layout -->`` markers).
4. Checks that every rewritten Python file still compiles, and lists the modules left at the top of
   ``central/`` that it does not know (``--move`` places them).

Two old modules share their name with their new package (``accounts`` → ``central.accounts.access``,
``pickup`` → ``central.pickup.codes``). ``central.accounts`` followed by one of the package's own
modules (``central.accounts.access``, ``from central.accounts import access``) is read as the new
form and left alone; anywhere else ``central.accounts`` / ``from central import accounts`` is read
as the old module and rewritten.

Not rewritten, and named in a warning to do by hand: a ``from central import`` that does not begin
its line (after ``;``) or is continued with a backslash. A comment inside a parenthesised
``from central import (...)`` is dropped, with a warning. A module with relative imports stops it.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

# old module under central/ -> its new dotted place under central/
MOVES = {
    "errors": "core.errors",
    "i18n": "core.i18n",
    "audit": "core.audit",
    "models": "core.models",  # since divided among the domains' models.py (and core/columns.py) by hand
    "cards": "core.cards",  # staff (programme) and the importer (schools) both use it
    "importer": "imports.importer",  # above pickup and programme: it revokes codes and records applications
    "accounts": "accounts.access",
    "schedule": "programme.schedule",
    "groups": "programme.groups",
    "staff": "programme.staff",
    "enrollment": "programme.enrollment",
    "public": "programme.public",
    "content": "programme.content",  # P5.2's word list, on main since h-rules-b
    "pickup": "pickup.codes",
    "ingest": "kiosks.ingest",
    "bus": "kiosks.bus",
    "roster": "kiosks.roster",
    "services": "kiosks.services",
}

# Modules made inside the packages after the move (the tables divided among the domains): a
# ``central.accounts.models`` is one of them, not the old ``accounts`` module's attribute.
LATER_MODULES = {"accounts": {"models", "users"}, "pickup": {"models"}}

# Modules that stay at the top of central/: the entry points, which wire everything together.
ENTRY_POINTS = ("main", "server", "admin", "demo")

# One line per package, for the README (and the order of the layers contract's domain layer).
PACKAGES = [
    ("core", "settings, database and migrations, central's signing key, errors, the message catalogue, "
             "the audit log, domain events (`events.py`: what services record, delivered to subscribers "
             "once committed), card and phone numbers as stored, the clock and time helpers (`clock.py`: now in "
             "UTC, stored times read back as UTC, a school's zone and local day), and the column types every "
             "domain's tables share (`columns.py`)"),
    ("schools", "schools and the one way to find one by its code (`registry.py`, which also creates them), "
                "students, classes, guardians, the links between them and when a link acts (`links.py`, P9.4), "
                "cards, the kiosks registered at each school (`models.py`)"),
    ("programme", "calendar and sessions, interest groups (and the words P5.2 refuses in them), staff and "
                  "vendors, enrollment by consent, excused absences (`excuses.py`), the public page"),
    ("accounts", "users and logins (`models.py`, `users.py`), roles, the caller and who may see or act for which child (`access.py`)"),
    ("pickup", "one-time pickup codes and photos (`models.py`, `codes.py`)"),
    ("notifications", "what guardians hear about their child (issue 16): the outbox, stored before sent, retried and "
                      "parked (`outbox.py`), fed by domain events; the channels, a signed webhook, an SMS gateway and "
                      "email (`channels.py`); each guardian's consent per channel (`models.py`)"),
    ("safety", "one list of what a principal must review, read from the events, incidents, child alerts and "
               "gates' health central keeps, each item under a stable key (`items.py`); its review steps, "
               "acknowledged, follow-up, closed, each a row, audited (`models.py`)"),
    ("reconciliation", "who was expected, who came, who left and who is unresolved, per session and day "
                       "(`daily.py`)"),
    ("billing", "the money rules, pure and in integer fen (`rules.py`: the cap, exemptions, refunds, subsidy, "
                "staff pay split; P7, P8.1); statements and report tables as PDF and XLSX (`documents.py`); staff pay "
                "by periods served (`staffpay.py`); the service fund's earmarked ledger (`ledger.py`, P7.5) and its "
                "summary on the public page (`public.py`)"),
    ("imports", "the roster import (CSV/XLSX): students, guardians, links, cards and applications in one transaction"),
    ("kiosks", "central's MQTT connection, the ingest, the roster kiosks copy, the kiosk registry's secrets, "
               "event log and incidents (`models.py`, `services.py`)"),
    ("api", "the HTTP routes, one resource per file, what every request passes (login, roles, limits), "
            "and the roster publisher (`roster_sync.py`, subscribed to `RosterChanged`)"),
    ("web", "the pages for people (issue 14, docs/pages.md): server-rendered HTML (`templates/`, `static/`, "
            "shipped in the package) over the same services and roles as `api`, the session cookie and CSRF "
            "(`session.py`), the live roster (`roster.py`) pushed by Server-Sent Events (`live.py`, `pages.py`)"),
    ("migrations", "Alembic migrations"),
]
# The domain packages from the top down: a package imports only those below it (``|``: neither
# imports the other). Each domain keeps its tables in its own ``models.py``.
DOMAINS = ("notifications | reconciliation | safety", "billing", "imports | kiosks", "pickup", "accounts", "programme", "schools")

SELF = "scripts/dev/relayout.py"
SKIP = (SELF, "tests/test_relayout.py")  # they name the old modules on purpose
SKIP_DIRS = ("wip/",)  # patches made against the old tree: rewriting them would break them

CONTRACTS_BEGIN = "# >>> central's own contracts"
CONTRACTS_END = "# <<< central's own contracts"
README_BEGIN = "<!-- central-layout: written by scripts/dev/relayout.py -->"
README_END = "<!-- /central-layout -->"


def contracts_block() -> str:
    domains = "\n".join(f'    "{layer}",' for layer in DOMAINS)
    entry = " : ".join(ENTRY_POINTS)
    return f'''{CONTRACTS_BEGIN}
# Written by scripts/dev/relayout.py; change them there. Inside central, imports run
# entry points -> web (pages) -> api (routes) -> domain packages, top down -> core: no domain imports api or a
# domain above it, core imports no domain.
[[tool.importlinter.contracts]]
name = "central's layers: entry points, then web (pages), then api (routes), then the domain packages from the top down, then core"
type = "layers"
containers = ["central"]
layers = [
    "{entry}",
    "web",
    "api",
{domains}
    "core",
]

[[tool.importlinter.contracts]]
name = "central's modules and packages import each other without cycles"
type = "acyclic_siblings"
ancestors = ["central"]
{CONTRACTS_END}'''


def readme_block() -> str:
    rows = "\n".join(f"| `central/{name}/` | {what} |" for name, what in PACKAGES)
    entry = ", ".join(f"`{name}.py`" for name in ENTRY_POINTS)
    return f"""{README_BEGIN}
Inside `central/`, one package per domain:

| package | what it holds |
| --- | --- |
{rows}
| `central/` itself | the entry points: {entry} (the FastAPI app, central served in a thread, the admin commands, the demo school) |

Inside central, imports run entry points → `web` → `api` → domain packages → `core`, and the domains from the top
down: `notifications` and `reconciliation` → `billing` → `imports` and `kiosks` → `pickup` → `accounts` → `programme` → `schools`. No domain imports `api` or a
domain above it, and `core` imports no domain (contracts in `pyproject.toml`, checked with the others).

Three conventions hold across the domains. A service names its school one way: the `School` row, as the
keyword `school=`. A route gets it from the path's `{{school}}` through `SchoolDep` (`api/deps.py`, resolved
after the caller's own school is checked, so another school's caller learns nothing of it), the command line
through `schools.registry.get_school`. Only what takes a school as input names it by code:
`registry.create_school`, the roster import (which may create the school), a new account's school
(`accounts.users.create_user`) and the kiosks' wire (topics and signed HTTP). Services raise the errors of
`core/errors.py` (localized; the routes turn them into statuses). Times come from `core/clock.py`.
{README_END}"""


@dataclass
class Mapping:
    """Old module name -> new dotted path, and what the text rewrites need to know about it."""

    moves: dict[str, str]
    submodules: dict[str, set[str]] = field(default_factory=dict)  # package -> its modules (new names)

    def __post_init__(self) -> None:
        for new in self.moves.values():
            package, _, module = new.rpartition(".")
            self.submodules.setdefault(package, set()).add(module)
        # Modules a package gained after the move (``accounts.models``): also the new form, never the old module's.
        for package, modules in LATER_MODULES.items():
            self.submodules.setdefault(package, set()).update(modules)

    def ambiguous(self, old: str) -> bool:
        """The old module's name is also its new package's (``accounts`` -> ``accounts.access``)."""
        return self.moves[old].split(".")[0] == old


NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class Rewriter:
    def __init__(self, mapping: Mapping) -> None:
        self.m = mapping
        names = "|".join(sorted(map(re.escape, mapping.moves), key=len, reverse=True))
        self.dotted = re.compile(rf"(?<![\w.])central\.({names})(?![\w])")
        self.path = re.compile(rf"(?<![\w./-])central/({names})\.py(?![\w])")
        # `from central import a, b as c` on one line, or parenthesised over several; at a line's start.
        self.from_central = re.compile(
            rf"^(?P<indent>[ \t]*)from[ \t]+central[ \t]+import[ \t]+"
            rf"(?:\((?P<paren>[^)]*)\)|(?P<plain>{NAME}(?:[ \t]+as[ \t]+{NAME})?(?:[ \t]*,[ \t]*{NAME}(?:[ \t]+as[ \t]+{NAME})?)*)(?![ \t]*[,\\]))",
            re.MULTILINE,
        )
        self.warnings: list[str] = []

    def rewrite(self, text: str, where: str) -> str:
        text = self.from_central.sub(lambda match: self._from_central(match, where), text)
        for line in re.findall(r"^.*\bfrom[ \t]+central[ \t]+import\b.*$", text, re.MULTILINE):
            named = set(re.findall(NAME, line.split("import", 1)[1].split("#")[0]))
            if named & set(self.m.moves) or line.rstrip().endswith("\\"):
                self.warnings.append(f"{where}: not rewritten, do it by hand: {line.strip()}")
        text = self.dotted.sub(self._dotted, text)
        return self.path.sub(lambda match: f"central/{self.m.moves[match[1]].replace('.', '/')}.py", text)

    def _from_central(self, match: re.Match, where: str) -> str:
        body = match["paren"] if match["paren"] is not None else match["plain"]
        if "#" in body:
            self.warnings.append(f"{where}: a comment inside `from central import (...)` is dropped; check it")
            body = re.sub(r"#[^\n]*", "", body)
        items = [item.split() for item in body.replace("\n", " ").split(",") if item.strip()]
        parsed = []
        for item in items:
            if len(item) == 1:
                parsed.append((item[0], item[0]))
            elif len(item) == 3 and item[1] == "as":
                parsed.append((item[0], item[2]))
            else:
                self.warnings.append(f"{where}: cannot read `from central import {body.strip()}`; left as it is")
                return match[0]
        if not any(name in self.m.moves for name, _ in parsed):
            return match[0]
        kept = [(name, local) for name, local in parsed if name not in self.m.moves]
        by_package: dict[str, list[str]] = {}
        for name, local in parsed:
            if name in self.m.moves:
                package, _, module = self.m.moves[name].rpartition(".")
                by_package.setdefault(package, []).append(module if module == local else f"{module} as {local}")
        lines = []
        if kept:
            lines.append("from central import " + ", ".join(n if n == l else f"{n} as {l}" for n, l in kept))
        for package in sorted(by_package):
            lines.append(f"from central.{package} import " + ", ".join(sorted(by_package[package])))
        indent = match["indent"]
        return "\n".join(indent + line for line in lines)

    def _dotted(self, match: re.Match) -> str:
        old = match[1]
        if self.m.ambiguous(old):
            # Already the new form: `central.accounts.access...` or `from central.accounts import access`.
            rest = match.string[match.end():]
            package_modules = self.m.submodules[old]
            after = re.match(rf"\.({NAME})", rest) or re.match(rf"[ \t]+import[ \t]+\(?\s*({NAME})", rest)
            if after and after[1] in package_modules:
                return match[0]
        return f"central.{self.m.moves[old]}"


SINGLE_IMPORT = re.compile(r"^([ \t]*)from central(?:\.[\w.]+)? import [^(\\\n]*$")


def sort_imports(text: str) -> str:
    """Each run of one-line ``from central… import`` statements at one indentation, sorted by module.

    The moves change module names, so a run sorted before is not after; parenthesised or continued
    statements are left where they are. Order cannot matter: central's modules import each other
    without cycles (an import-linter contract)."""
    out: list[str] = []
    run: list[str] = []
    indent = None
    for line in text.split("\n") + [None]:
        match = SINGLE_IMPORT.match(line) if line is not None else None
        if match and (not run or match[1] == indent):
            run.append(line)
            indent = match[1]
            continue
        out.extend(sorted(run, key=lambda l: (l.split()[1], l)))
        run, indent = ([line], match[1]) if match else ([], None)
        if not match and line is not None:
            out.append(line)
    return "\n".join(out)


def replace_block(text: str, begin: str, end: str, block: str) -> str | None:
    """``text`` with the block between the markers replaced, or None when the markers are absent."""
    start = text.find(begin)
    if start < 0:
        return None
    stop = text.find(end, start)
    if stop < 0:
        raise SystemExit(f"{begin!r} without {end!r}")
    return text[:start] + block + text[stop + len(end):]


def with_contracts(text: str) -> str:
    replaced = replace_block(text, CONTRACTS_BEGIN, CONTRACTS_END, contracts_block())
    return replaced if replaced is not None else text.rstrip("\n") + "\n\n" + contracts_block() + "\n"


def with_layout(text: str) -> str:
    replaced = replace_block(text, README_BEGIN, README_END, readme_block())
    if replaced is not None:
        return replaced
    heading = re.search(r"^## Layout[ \t]*\n", text, re.MULTILINE)
    if heading is None:
        return text.rstrip("\n") + "\n\n## Layout\n\n" + readme_block() + "\n"
    # After the section's first table (the repository's packages), before what follows it.
    table = re.compile(r"(?:^\|.*\n)+", re.MULTILINE).search(text, heading.end())
    at = table.end() if table else heading.end()
    return text[:at] + "\n" + readme_block() + "\n" + text[at:]


class Tree:
    def __init__(self, root: Path, check: bool) -> None:
        self.root = root
        self.check = check
        self.changes: list[str] = []

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True).stdout

    def write(self, rel: str, text: str) -> None:
        self.changes.append(f"rewrite {rel}")
        if not self.check:
            (self.root / rel).write_text(text, encoding="utf-8")
            self.git("add", rel)  # staged with the moves: `git commit` takes the whole change

    def move(self, mapping: Mapping) -> None:
        for old, new in mapping.moves.items():
            src = self.root / "central" / f"{old}.py"
            dst = self.root / "central" / (new.replace(".", "/") + ".py")
            if src.exists() and dst.exists():
                raise SystemExit(f"both {src.relative_to(self.root)} and {dst.relative_to(self.root)} exist: merge them by hand")
            if not src.exists():
                if not dst.exists():
                    print(f"note: neither central/{old}.py nor {dst.relative_to(self.root)} exists; skipped", file=sys.stderr)
                continue
            relative = _relative_imports(src)
            if relative:
                raise SystemExit(f"central/{old}.py has relative imports ({relative}): make them absolute first")
            self.changes.append(f"git mv central/{old}.py {dst.relative_to(self.root)}")
            if self.check:
                continue
            package = dst.parent
            for folder in [package, *package.parents]:
                if folder == self.root / "central":
                    break
                folder.mkdir(exist_ok=True)
                init = folder / "__init__.py"
                if not init.exists():
                    init.write_text("", encoding="utf-8")
                    self.git("add", str(init.relative_to(self.root)))
            self.git("mv", str(src.relative_to(self.root)), str(dst.relative_to(self.root)))

    def files(self) -> list[str]:
        listed = self.git("ls-files", "-z").split("\0")
        return [f for f in listed if f and f not in SKIP and not f.startswith(SKIP_DIRS) and (self.root / f).is_file()]

    def rewrite(self, rewriter: Rewriter) -> None:
        broken = []
        for rel in self.files():
            path = self.root / rel
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            if "central" not in text:
                continue
            new = rewriter.rewrite(text, rel)
            if rel.endswith(".py") and new != text:
                new = sort_imports(new)
            if rel == "pyproject.toml":
                new = with_contracts(new)
            if rel == "README.md":
                new = with_layout(new)
            if new == text:
                continue
            if rel.endswith(".py"):
                try:
                    compile(new, rel, "exec")
                except SyntaxError as exc:
                    broken.append(f"{rel}: {exc}")
            self.write(rel, new)
        if broken:
            raise SystemExit("rewritten files that no longer compile:\n  " + "\n  ".join(broken))

    def unplaced(self, mapping: Mapping) -> list[str]:
        known = set(mapping.moves) | set(ENTRY_POINTS) | {"__init__"}
        return sorted(p.name for p in (self.root / "central").glob("*.py") if p.stem not in known)


def _relative_imports(path: Path) -> str:
    found = re.findall(r"^\s*from\s+\.+\S*\s+import", path.read_text(encoding="utf-8"), re.MULTILINE)
    return ", ".join(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the repository's root (default: here)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when something would change")
    parser.add_argument("--move", action="append", default=[], metavar="OLD=NEW",
                        help="also move central/OLD.py to central/NEW (dotted, e.g. clock=core.clock)")
    args = parser.parse_args(argv)
    moves = dict(MOVES)
    for extra in args.move:
        old, _, new = extra.partition("=")
        if not re.fullmatch(NAME, old) or not re.fullmatch(rf"{NAME}(\.{NAME})+", new):
            parser.error(f"--move {extra!r}: write OLD=package.module")
        moves[old] = new
    root = args.root.resolve()
    if not (root / "central").is_dir() or not (root / ".git").exists():
        parser.error(f"{root} is not the repository's root (no central/ or .git)")
    mapping = Mapping(moves)
    tree = Tree(root, args.check)
    tree.move(mapping)
    rewriter = Rewriter(mapping)
    tree.rewrite(rewriter)
    for warning in rewriter.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for name in tree.unplaced(mapping):
        print(f"warning: central/{name} is not placed in a package (add it to MOVES or use --move)", file=sys.stderr)
    for change in tree.changes:
        print(("would " if args.check else "") + change)
    if not tree.changes:
        print("nothing to do: central is laid out already")
    return 1 if args.check and tree.changes else 0


if __name__ == "__main__":
    sys.exit(main())
