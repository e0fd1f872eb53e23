"""Check the message catalogue, and add a message to it.

``python -m i18n.check`` (``scripts/i18n-check``) finds, and exits 1 on:

- in the ``.po`` files: a key twice in one file, a key missing from a language, an empty or fuzzy
  text, a text whose ``{placeholders}`` differ between the languages, a text that does not format;
- in the code (every ``.py`` of the packages): a literal key given to ``t(...)``, ``Msg(...)``, an
  error of the ``LocalizedError`` family or a kiosk ``Decision(...)`` that is not in the catalogue,
  and a call that names its parameters (no ``**``) but leaves out a placeholder of its message.

It also lists the keys no code names literally, as a hint (some are built at run time, like
``alert_{kind}``). ``python -m i18n.check add KEY ZH_TEXT EN_TEXT`` appends a message to both files.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from babel.messages.pofile import escape, read_po

from i18n import DEFAULT_LOCALE, DOMAIN, LOCALE_DIR, LOCALES, placeholders

ROOT = LOCALE_DIR.parent.parent
PACKAGES = ("hardware", "kiosk", "gateway", "central", "schoolgate", "i18n")
# Calls whose first argument is a message key: the catalogue's own helpers and the kiosk's decisions.
KEYED_CALLS = {"t", "Msg", "Decision", "LocalizedError"}
KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def _po(locale_dir: Path, locale: str) -> Path:
    return locale_dir / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def catalogue_problems(locale_dir: Path = LOCALE_DIR) -> list[Problem]:
    """What is wrong with the ``.po`` files: every message in every language, non-empty, same placeholders."""
    problems: list[Problem] = []
    texts: dict[str, dict[str, str]] = {}
    for locale in LOCALES:
        path = _po(locale_dir, locale)
        where = str(path.relative_to(locale_dir.parent.parent)) if path.is_relative_to(locale_dir.parent.parent) else str(path)
        if not path.exists():
            problems.append(Problem(where, "missing"))
            texts[locale] = {}
            continue
        # Babel keeps the last of two entries with one key; the raw file shows both.
        raw_ids = re.findall(r'^msgid "(.+)"$', path.read_text(encoding="utf-8"), flags=re.M)
        problems += [Problem(where, f"{key!r} appears {n} times") for key, n in Counter(raw_ids).items() if n > 1]
        with path.open("rb") as fp:
            catalog = read_po(fp, locale=locale, domain=DOMAIN)
        texts[locale] = {}
        for message in catalog:
            if not message.id:
                continue
            if not isinstance(message.id, str):
                problems.append(Problem(where, f"{message.id[0]!r} has plural forms; write two keys instead"))
                continue
            if not KEY.match(message.id):
                problems.append(Problem(where, f"{message.id!r} is not a key (lower-case words joined by . and _)"))
            if message.fuzzy:
                problems.append(Problem(where, f"{message.id!r} is marked fuzzy: check the text and drop the flag"))
            if not (message.string or "").strip():
                problems.append(Problem(where, f"{message.id!r} has no text"))
                continue
            try:
                placeholders(message.string)
            except ValueError as exc:
                problems.append(Problem(where, f"{message.id!r} does not format ({exc}): write {{{{ and }}}} for braces"))
                continue
            texts[locale][message.id] = message.string
    default = texts[DEFAULT_LOCALE]
    for locale in LOCALES:
        if locale == DEFAULT_LOCALE:
            continue
        for key in sorted(set(default) - set(texts[locale])):
            problems.append(Problem(key, f"has no {locale} text"))
        for key in sorted(set(texts[locale]) - set(default)):
            problems.append(Problem(key, f"has no {DEFAULT_LOCALE} text"))
        for key in sorted(set(default) & set(texts[locale])):
            ours, theirs = placeholders(default[key]), placeholders(texts[locale][key])
            if ours != theirs:
                problems.append(Problem(key, f"placeholders differ: {DEFAULT_LOCALE} {sorted(ours)}, {locale} {sorted(theirs)}"))
    return problems


def _sources(root: Path) -> Iterable[Path]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _error_classes(trees: dict[Path, ast.Module]) -> set[str]:
    """Names of the ``LocalizedError`` family in the code (``Invalid``, ``Missing``, …), by their bases."""
    family = {"LocalizedError"}
    classes = [node for tree in trees.values() for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for node in classes:
            bases = {base.id if isinstance(base, ast.Name) else getattr(base, "attr", None) for base in node.bases}
            if node.name not in family and bases & family:
                family.add(node.name)
                grew = True
    return family


def code_problems(root: Path = ROOT, locale_dir: Path = LOCALE_DIR) -> tuple[list[Problem], set[str]]:
    """Literal keys in the code that the catalogue lacks, and calls that leave out a placeholder.

    Returns the problems and the keys named literally (for the unused-key hint).
    """
    with _po(locale_dir, DEFAULT_LOCALE).open("rb") as fp:
        texts = {m.id: m.string for m in read_po(fp, locale=DEFAULT_LOCALE, domain=DOMAIN) if m.id}
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), str(path)) for path in _sources(root)}
    keyed = KEYED_CALLS | _error_classes(trees)
    problems: list[Problem] = []
    named: set[str] = set()
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named.add(node.value)
            elif isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
                named.add(str(node.values[0].value) + "*")  # f"alert_{kind}": every key it may build
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            first = node.args[0]
            if func not in keyed or not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                continue
            where = f"{path.relative_to(root)}:{node.lineno}"
            if first.value not in texts:
                problems.append(Problem(where, f"{func}({first.value!r}): no such message in the catalogue"))
                continue
            given = {kw.arg for kw in node.keywords}
            if func == "Msg":  # Msg(key, {"name": …}): its parameters are a mapping, checked when written out
                mapping = node.args[1] if len(node.args) > 1 else next((kw.value for kw in node.keywords if kw.arg == "params"), None)
                if isinstance(mapping, ast.Dict):
                    given = {k.value for k in mapping.keys if isinstance(k, ast.Constant)}
                elif mapping is not None:
                    given = {None}  # a mapping made at run time
            if func in ("Decision",) or None in given:  # a decision's fields, or **params: known at run time
                continue
            missing = placeholders(texts[first.value]) - given
            if missing:
                problems.append(Problem(where, f"{func}({first.value!r}) leaves out {', '.join(sorted(missing))}"))
    return problems, named


def unused_keys(named: set[str], locale_dir: Path = LOCALE_DIR) -> list[str]:
    with _po(locale_dir, DEFAULT_LOCALE).open("rb") as fp:
        keys = [m.id for m in read_po(fp, locale=DEFAULT_LOCALE, domain=DOMAIN) if m.id]
    prefixes = tuple(name[:-1] for name in named if name.endswith("*") and name[:-1])
    return [key for key in keys if key not in named and not key.startswith(prefixes)]


def add(key: str, texts: dict[str, str], locale_dir: Path = LOCALE_DIR) -> None:
    """Append one message to every language's file (refused if the key is taken or a text is missing)."""
    if not KEY.match(key):
        raise SystemExit(f"{key!r} is not a key: lower-case words joined by . and _ (e.g. enrollment.not_found)")
    with _po(locale_dir, DEFAULT_LOCALE).open("rb") as fp:
        if key in {m.id for m in read_po(fp, locale=DEFAULT_LOCALE, domain=DOMAIN)}:
            raise SystemExit(f"{key!r} is already in the catalogue")
    names = {locale: placeholders(text) for locale, text in texts.items()}
    if set(texts) != set(LOCALES) or not all(text.strip() for text in texts.values()) or len({frozenset(n) for n in names.values()}) != 1:
        raise SystemExit(f"give a non-empty text for each of {', '.join(LOCALES)}, with the same placeholders: {names}")
    for locale in LOCALES:
        path = _po(locale_dir, locale)
        body = path.read_text(encoding="utf-8").rstrip("\n")
        path.write_text(f"{body}\n\nmsgid {escape(key)}\nmsgstr {escape(texts[locale])}\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv[:1] == ["add"]:
        if len(argv) != 2 + len(LOCALES):
            print(f"usage: python -m i18n.check add KEY {' '.join(l.upper() + '_TEXT' for l in LOCALES)}", file=sys.stderr)
            return 2
        add(argv[1], dict(zip(LOCALES, argv[2:])))
        print(f"added {argv[1]}")
        argv = []
    if argv:
        print("usage: python -m i18n.check [add KEY ZH_CN_TEXT EN_TEXT]", file=sys.stderr)
        return 2
    problems = catalogue_problems()
    in_code, named = code_problems()
    problems += in_code
    for problem in problems:
        print(problem)
    unused = unused_keys(named)
    if unused:
        print(f"hint: {len(unused)} key(s) that no code names literally (built at run time, or left over): {', '.join(unused)}")
    with _po(LOCALE_DIR, DEFAULT_LOCALE).open("rb") as fp:
        count = len(read_po(fp, locale=DEFAULT_LOCALE, domain=DOMAIN))
    print(f"{count} messages in {', '.join(LOCALES)}: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
