"""The command line as a user runs it: separate processes, real files, real broker where needed."""

from __future__ import annotations

import json
import re
import os
import subprocess
import sys

from gateway.mqtt import free_port


def clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}, **extra}


def schoolgate(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "schoolgate", *args], capture_output=True, text=True, timeout=60, env=clean_env(**env)
    )


def test_kiosk_first_boot_offline_prints_a_decision_per_card_and_keeps_them(tmp_path):
    # No broker answers on this port: the kiosk still decides, records and prints.
    dead = f"mqtt://127.0.0.1:{free_port()}"
    args = ["kiosk", "run", "--school", "s1", "--kiosk", "gate-1", "--reader", "sim", "--no-ui",
            "--data-dir", str(tmp_path), "--mqtt-url", dead]
    proc = subprocess.Popen(
        [sys.executable, "-m", "schoolgate", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env(),
    )
    try:
        proc.stdin.write("04A1B2C3\n# a comment\n04112233445566\nnot-a-card\n0A0B0C0D\n")
        proc.stdin.flush()
        lines = [json.loads(proc.stdout.readline()) for _ in range(3)]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert [d["outcome"] for d in lines] == ["unknown_card"] * 3
    assert [d["card"] for d in lines] == ["04A1B2C3", "04112233445566", "0A0B0C0D"]
    assert [d["seq"] for d in lines] == [1, 2, 3]
    assert "register-kiosk --school s1 --kiosk gate-1 --secret" in err

    from kiosk.store import KioskStore

    store = KioskStore(tmp_path / "s1-gate-1.sqlite3", school="s1", kiosk="gate-1")
    assert store.queue_depth() == 3


def test_kiosk_refuses_a_bad_reader_spec_and_lists_the_valid_forms(tmp_path):
    result = schoolgate("kiosk", "run", "--school", "s1", "--kiosk", "k", "--reader", "pcsc:0", "--no-ui",
                        "--data-dir", str(tmp_path), "--mqtt-url", "")
    assert result.returncode == 2
    assert "nfc:usb" in result.stderr and "sim" in result.stderr


def test_import_reports_every_bad_row_and_imports_nothing(tmp_path):
    students = tmp_path / "学生.csv"
    students.write_text(
        "学号,姓名,年级,班级,卡号,建档立卡\n1001,王一,三年级,1班,04A1B2C3,否\n1002,,三年级,1班,XYZ,否\n1003,李三,三年级,1班,,也许\n",
        encoding="utf-8",
    )
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    result = schoolgate(
        "central", "import", str(students), "--school", "s1", "--create-school",
        SCHOOLGATE_DATABASE_URL=db, SCHOOLGATE_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 2
    # The command line speaks zh_CN here (LANG=C.UTF-8): the rows' reasons too, not only its own line.
    assert "学生.csv 第 3 行，姓名 列：为空" in result.stderr
    assert "学生.csv 第 4 行，建档立卡 列：'也许' 不是 是/否（yes/no）" in result.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM student")).scalar() == 0


def test_import_into_a_school_id_kiosks_cannot_use_fails_and_stores_nothing(tmp_path):
    students = tmp_path / "学生.csv"
    students.write_text("学号,姓名,年级,班级,卡号,建档立卡\n1001,王一,三年级,1班,04A1B2C3,否\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    result = schoolgate(
        "central", "import", str(students), "--school", "示范 小学", "--create-school", "--school-name", "示范小学",
        SCHOOLGATE_DATABASE_URL=db, SCHOOLGATE_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 2
    assert "示范 小学" in result.stderr and "Traceback" not in result.stderr
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM school")).scalar() == 0
        assert conn.execute(sa.text("SELECT COUNT(*) FROM student")).scalar() == 0


def test_schools_are_created_explicitly_and_only_so(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    env = {"SCHOOLGATE_DATABASE_URL": db, "SCHOOLGATE_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}
    import sqlalchemy as sa

    def schools() -> list[tuple]:
        engine = sa.create_engine(db)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT code, name, timezone FROM school ORDER BY code")).all()
        finally:
            engine.dispose()

    # Registering a kiosk for a school nobody created is an error that says what to do.
    refused = schoolgate("central", "register-kiosk", "--school", "nosuch", "--kiosk", "gate-1", **env)
    assert refused.returncode == 2
    assert "nosuch" in refused.stderr and "create-school nosuch" in refused.stderr and "Traceback" not in refused.stderr
    assert schools() == []
    # So is importing into one, unless the import says to create it.
    students = tmp_path / "学生.csv"
    students.write_text("学号,姓名,年级,班级,卡号,建档立卡\n1001,王一,三年级,1班,04A1B2C3,否\n", encoding="utf-8")
    refused = schoolgate("central", "import", str(students), "--school", "s2", **env)
    assert refused.returncode == 2 and "--create-school" in refused.stderr
    assert schools() == []
    made = schoolgate("central", "import", str(students), "--school", "s2", "--create-school", "--school-name", "第二小学", **env)
    assert made.returncode == 0, made.stderr
    # create-school checks the id as an import does, and a school is created once.
    bad = schoolgate("central", "create-school", "示范 小学", "--name", "示范小学", **env)
    assert bad.returncode == 2 and "示范 小学" in bad.stderr
    created = schoolgate("central", "create-school", "s1", "--name", "示范小学", "--zone", "Asia/Urumqi", **env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout) == {"school": "s1", "name": "示范小学", "timezone": "Asia/Urumqi"}
    again = schoolgate("central", "create-school", "s1", "--name", "别的名字", **env)
    assert again.returncode == 2 and "s1" in again.stderr
    assert schools() == [("s1", "示范小学", "Asia/Urumqi"), ("s2", "第二小学", "Asia/Shanghai")]
    registered = schoolgate("central", "register-kiosk", "--school", "s1", "--kiosk", "gate-1", **env)
    assert registered.returncode == 0, registered.stderr


def test_demo_headless_prints_the_summary():
    result = schoolgate("demo", "--headless")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # the guard signs in (staff_on); 60 check-ins; a pickup confirmed by the guard; a barred guardian (an alert)
    # refused with their child (4 taps, 3 events)
    assert summary["taps"] == 65 and summary["guard_signed_in"] and summary["checked_in"] == 60
    assert summary["events_at_central"] == 64 and summary["pickups"] == 1 and summary["refused_barred"] == 1
    # v1 is the import (nobody enrolled), v2 the consent chain that enrolls every demo student (P2.1).
    assert summary["outbox_left"] == 0 and summary["kiosk_roster_version"] >= 2 and summary["ok"]


def test_broker_command_refuses_to_run_without_centrals_login():
    result = schoolgate("broker", "--port", str(free_port()))
    assert result.returncode == 2
    assert "names no login" in result.stderr


def test_broker_command_serves_mqtt(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLGATE_")}
    env.update(SCHOOLGATE_MQTT_URL=f"mqtt://central:pw@127.0.0.1:{port}", SCHOOLGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}")
    proc = subprocess.Popen([sys.executable, "-m", "schoolgate", "broker", "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        from gateway.broker import wait_until_reachable

        wait_until_reachable("127.0.0.1", port, timeout=20)
    finally:
        proc.terminate()
        proc.wait(10)


def test_gateway_mosquitto_config_writes_a_login_per_registered_kiosk(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    created = schoolgate("central", "create-school", "s1", "--name", "示范小学", SCHOOLGATE_DATABASE_URL=db)
    assert created.returncode == 0, created.stderr
    registered = schoolgate("central", "register-kiosk", "--school", "s1", "--kiosk", "gate-1", SCHOOLGATE_DATABASE_URL=db)
    assert registered.returncode == 0, registered.stderr
    assert re.fullmatch(r"[0-9a-f]{64}", json.loads(registered.stdout)["central_key"])  # for the kiosk's --central-key
    result = schoolgate("gateway", "mosquitto-config", "--out", str(tmp_path / "mq"), "--port", "1884",
                        "--central-port", "1890", SCHOOLGATE_DATABASE_URL=db)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["kiosks"] == 1
    assert summary["central_mqtt_url"].startswith("mqtt://central:") and summary["central_mqtt_url"].endswith("@127.0.0.1:1890")
    assert "user k.s1.gate-1" in (tmp_path / "mq" / "acl").read_text()
    conf = (tmp_path / "mq" / "mosquitto.conf").read_text().splitlines()
    assert "listener 1884 0.0.0.0" in conf and "listener 1890 127.0.0.1" in conf
    assert (tmp_path / "mq" / "passwd").read_text().count("$7$101$") == 1  # the kiosk; central has a file of its own
    assert (tmp_path / "mq" / "central-passwd").read_text().startswith("central:$7$101$")


def _console_in_a_terminal(args: list[str], tmp_path, expect: str) -> tuple[int, str]:
    """Run a console command on a pseudo-terminal, wait for ``expect`` on screen, press q."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    os.set_blocking(master, False)
    env = clean_env(TERM="xterm-256color", COLUMNS="120", LINES="40")
    proc = subprocess.Popen([sys.executable, "-m", "schoolgate", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True)
    os.close(slave)
    seen = b""
    try:
        deadline = time.monotonic() + 60
        while expect.encode() not in seen and time.monotonic() < deadline and proc.poll() is None:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        shown = expect.encode() in seen
        os.write(master, b"q")
        # Keep reading while it shuts down: a full pseudo-terminal would block its last writes.
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([master], [], [], 0.2)[0]:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        code = proc.wait(30)  # a bound, not a pause: a loaded machine may take a while to shut Textual down
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert shown, seen[-2000:]
    return code, seen.decode("utf-8", "replace")


def test_kiosk_run_without_no_ui_opens_the_console_in_english_and_q_quits(tmp_path):
    dead = f"mqtt://127.0.0.1:{free_port()}"
    args = ["kiosk", "run", "--school", "s1", "--kiosk", "gate-1", "--reader", "keyboard", "--lang", "en",
            "--data-dir", str(tmp_path), "--mqtt-url", dead]
    code, _screen = _console_in_a_terminal(args, tmp_path, "After-school gate")
    assert code == 0


def test_kiosk_run_refuses_an_unknown_language(tmp_path):
    result = schoolgate("kiosk", "run", "--school", "s1", "--kiosk", "gate-1", "--lang", "fr", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and result.stderr == "--lang 只能是 zh_CN, en，不能是 fr\n"


def test_demo_console_needs_a_terminal():
    result = schoolgate("demo")
    assert result.returncode == 2 and "--headless" in result.stderr


def test_demo_opens_the_console_on_the_demo_school_and_prints_the_summary_on_quit(tmp_path):
    code, screen = _console_in_a_terminal(["demo"], tmp_path, "demo-school")
    assert code == 0, screen[-2000:]


def test_central_serve_on_an_open_address_refuses_the_default_token():
    # SCHOOLGATE_ENVIRONMENT unset: still refused, before anything listens.
    done = schoolgate("central", "serve", "--host", "0.0.0.0", "--port", str(free_port()))
    assert done.returncode == 2
    assert "拒绝在 0.0.0.0 上监听" in done.stderr and "SCHOOLGATE_API_TOKEN" in done.stderr


def test_import_takes_legacy_xls_and_a_guardians_file_alone(tmp_path):
    from pathlib import Path

    fixtures = Path(__file__).parent.parent / "fixtures" / "roster"
    env = dict(SCHOOLGATE_DATABASE_URL=f"sqlite:///{tmp_path / 'c.sqlite3'}", SCHOOLGATE_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}",
               SCHOOLGATE_SIGNING_KEY_FILE=str(tmp_path / "signing.key"), LANG="en_US.UTF-8")
    assert schoolgate("central", "create-school", "s1", "--name", "示范小学", **env).returncode == 0
    students = schoolgate("central", "import", str(fixtures / "学生.xls"), "--school", "s1", **env)
    assert students.returncode == 0, students.stderr
    assert json.loads(students.stdout)["imported"]["students_created"] == 2
    alone = schoolgate("central", "import", "--guardians", str(fixtures / "家长.xls"), "--school", "s1", **env)
    assert alone.returncode == 0, alone.stderr
    imported = json.loads(alone.stdout)["imported"]
    assert (imported["students_created"], imported["guardians_created"], imported["links"]) == (0, 1, 2)
    nothing = schoolgate("central", "import", "--school", "s1", **env)
    assert nothing.returncode == 2 and "No file to import" in nothing.stderr
