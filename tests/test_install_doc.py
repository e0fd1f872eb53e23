"""docs/install.md, followed: its ```bash install-test``` blocks run as written, on this machine.

Issue 18's "done when": a central on PostgreSQL (a fresh database), Mosquitto from the generated
configuration and a kiosk that checks a child in, reaching a stored check-in event at central. The
blocks are run with bash after a few replacements that put the install in a temporary folder and on
free ports: /etc/schoolgate, /var/lib/schoolgate and /opt/schoolgate/venv, the database URL, the
ports 1883/1884/8000, the server's name, ``sudo -u schoolgate`` (the test is one user) and the
kiosk's reader (``nfc:usb`` becomes the simulated one, which reads card numbers from stdin).
Between the server's blocks and the kiosk's, the test enrolls the students as a school does through
the API (the consent chain, P2.1), with the demo's helper.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
from sgtest import fresh_postgres_database, require, wait_for

from gateway.broker import wait_until_reachable
from gateway.mqtt import free_port

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BLOCK = re.compile(r"^```bash install-test (\S+)\n(.*?)^```", re.S | re.M)

pytestmark = pytest.mark.real_services


def blocks(doc: Path) -> dict[str, str]:
    found = {name: text for name, text in BLOCK.findall(doc.read_text(encoding="utf-8"))}
    assert set(found) == {"server", "server-run", "kiosk", "kiosk-run"}, set(found)
    return found


def test_both_languages_run_the_same_commands():
    zh, en = blocks(ROOT / "docs" / "install.md"), blocks(ROOT / "docs" / "install.en.md")
    strip = lambda text: [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]  # noqa: E731
    assert {k: strip(v) for k, v in zh.items()} == {k: strip(v) for k, v in en.items()}


def test_following_the_install_doc_checks_a_child_in_at_central(tmp_path):
    require("postgres")
    if not os.path.exists(MOSQUITTO):
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: the mosquitto binary is needed and missing")
        pytest.skip("needs the mosquitto binary (Debian package mosquitto)")
    if os.geteuid() != 0:
        pytest.skip("runs the doc's commands as root, as an installer does (mosquitto-config gives files to mosquitto)")
    import pwd

    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("needs the account mosquitto (Debian package mosquitto)")
    # The account mosquitto must reach its files: pytest's folders are root's alone.
    top = Path(tempfile.mkdtemp(prefix="sg-install-"))
    top.chmod(0o755)
    procs: list[subprocess.Popen] = []
    try:
        with fresh_postgres_database() as database_url:
            _follow(top, database_url, procs)
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(top, ignore_errors=True)


def _follow(top: Path, database_url: str, procs: list[subprocess.Popen]) -> None:
    kiosk_port, central_port, http_port = free_port(), free_port(), free_port()
    (top / "etc").mkdir(mode=0o755)
    venv_bin = Path(sys.executable).parent
    replace = [
        (r"/etc/schoolgate", str(top / "etc")),
        (r"/var/lib/schoolgate", str(top / "var")),
        (r"/opt/schoolgate/venv/bin/schoolgate", f"{sys.executable} -m schoolgate"),
        (r"sudo -u schoolgate (--preserve-env=\S+ )?", ""),
        (r"postgresql://schoolgate@127\.0\.0\.1/schoolgate", database_url),
        (r"server\.example", "127.0.0.1"),
        (r"\b1883\b", str(kiosk_port)),
        (r"\b1884\b", str(central_port)),
        (r"\b8000\b", str(http_port)),
        (r'reader = "nfc:usb"', 'reader = "sim"'),
        (r"chgrp schoolgate ", "chgrp 0 "),
    ]

    def local(text: str) -> str:
        for pattern, value in replace:
            text = re.sub(pattern, value.replace("\\", "\\\\"), text)
        return text

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env.update(PYTHONPATH=str(ROOT), PATH=f"{venv_bin}:{env.get('PATH', '')}", LANG="C.UTF-8")

    def script(name: str) -> None:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", local(doc[name])], cwd=top, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"block {name!r} failed:\n{result.stderr}"

    def start(line: str, **options) -> subprocess.Popen:
        proc = subprocess.Popen(local(line).split(), cwd=top, env=env, text=True, **options)
        procs.append(proc)
        return proc

    doc = blocks(ROOT / "docs" / "install.md")
    with (top / "学生.csv").open("w", encoding="utf-8") as f:
        f.write("学号,姓名,年级,班级,卡号\n1001,张小明,三年级,2班,04A1B2C3\n")
    with (top / "家长.csv").open("w", encoding="utf-8") as f:
        f.write("姓名,关系,手机,卡号,学生学号,可接送,禁止接送\n王芳,母亲,13800138000,0A0B0C0D,1001,是,否\n")

    script("server")
    assert (top / "etc" / "mosquitto" / "passwd").read_text().count("k.school-1.gate-1:") == 1
    mosquitto_line, central_line = [ln for ln in doc["server-run"].splitlines() if ln and not ln.startswith("#")]
    start(mosquitto_line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start(central_line, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until_reachable("127.0.0.1", kiosk_port, timeout=10)
    wait_for(lambda: _get(f"http://127.0.0.1:{http_port}/healthz").get("mqtt") is True, what="central connected to Mosquitto")

    # The school enrolls its students through the consent chain (README, API); the demo's helper does it here.
    from central.core.config import Settings
    from central.demo import enroll_demo_students

    settings = Settings.load(top / "etc" / "central.toml")
    enrolled = enroll_demo_students(settings, school="school-1")

    script("kiosk")
    [kiosk_line] = [ln for ln in doc["kiosk-run"].splitlines() if ln and not ln.startswith("#")]
    kiosk = start(kiosk_line, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def kiosk_roster_version() -> int:
        # What `schoolgate kiosk status` reads, read here (a process per look would be seconds each).
        from datetime import UTC, datetime

        from kiosk.store import StoreError, read_status

        try:
            status = read_status(top / "var" / "kiosk" / "school-1-gate-1.sqlite3", datetime(2026, 12, 1, tzinfo=UTC))
        except (StoreError, OSError):
            return 0  # not made yet
        return status.roster_version or 0

    wait_for(lambda: kiosk_roster_version() >= enrolled.version, what="the kiosk's roster with the enrollment")
    kiosk.stdin.write("04A1B2C3\n")
    kiosk.stdin.flush()
    decision = json.loads(kiosk.stdout.readline())
    assert decision["outcome"] == "checked_in", decision

    token = re.search(r'^api_token = "(.+)"$', (top / "etc" / "central.toml").read_text(), re.M).group(1)

    def stored() -> list[dict]:
        response = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/schools/school-1/events",
                             headers={"Authorization": f"Bearer {token}"}, timeout=5)
        response.raise_for_status()
        return response.json()

    wait_for(lambda: stored(), what="the check-in stored at central")
    [event] = stored()
    assert (event["kind"], event["kiosk"], event["card"]) == ("checkin", "gate-1", "04A1B2C3")


def _get(url: str) -> dict:
    try:
        return httpx.get(url, timeout=2).json()
    except httpx.HTTPError:
        return {}


def test_the_readme_links_to_the_install_docs_and_nowhere_outside_the_repository():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)", readme)
    assert "docs/install.md" in targets and "docs/install.en.md" in targets
    for target in targets:
        if re.match(r"[a-z]+://", target):
            continue
        path = (ROOT / target).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    assert "../" not in readme and "/work/" not in readme
    # The newcomer's two commands stay as they were.
    assert "scripts/sg demo --headless     # the whole system on this machine" in readme
    assert "scripts/test                   # the test suite" in readme
