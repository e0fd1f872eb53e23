"""Setting a school's people up on pages, without curl (issue 14): /admin/staff (staff and their cards, which
reach the gates as after the API's call), /admin/vendors (P6.2's chain: the district's steps for district
accounts only), /admin/accounts (who may make which role). Without a browser, on the in-process app."""

from __future__ import annotations

import html
import re

from sqlmodel import col, select

from central.accounts.models import User
from central.core.audit import AuditLog
from central.programme.models import Staff, StaffCard, Vendor, VendorApproval
from central.schools.models import School
from gateway import protocol

from .conftest import PASSWORD
from .test_pages import csrf_of, log_in, pages  # noqa: F401  (pages: the fixture)


class RecordingBus:
    """Stands for central's MQTT client: what central publishes, by topic."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bool]] = []

    def publish(self, topic, payload, *, retain=False, qos=1):
        self.sent.append((topic, payload, retain))

    def roster(self) -> protocol.RosterSnapshot:
        """The last retained roster of s1, read as a gate reads it."""
        payload = [p for topic, p, retain in self.sent if topic == "sg/v1/s1/roster" and retain][-1]
        return protocol.parse_snapshot(payload)


def _as(pages, user: str, path: str) -> str:
    pages.client.cookies.clear()
    log_in(pages.client, user)
    r = pages.client.get(path)
    assert r.status_code == 200, r.text
    return csrf_of(r.text)


def _text(r) -> str:
    return html.unescape(r.text)


def _staff_id(pages, name: str) -> int:
    with pages.session() as db:
        return db.exec(select(Staff).where(Staff.name == name)).one().id


def _audit(pages, entity: str) -> list[tuple[str, str]]:
    with pages.session() as db:
        return [(a.action, a.actor) for a in db.exec(select(AuditLog).where(AuditLog.entity == entity).order_by(col(AuditLog.seq)))]


# --- staff and cards -------------------------------------------------------------------------------


def test_a_staff_member_and_their_card_reach_the_gates_with_the_number_masked_on_the_page(pages):
    bus = pages.client.app.state.bus = RecordingBus()
    csrf = _as(pages, "admin1", "/admin/staff")
    r = pages.client.post("/admin/staff", data={"csrf": csrf, "name": "老张", "kind": "guard", "phone": "13812345678"})
    assert r.status_code == 201, r.text
    assert "已添加 老张" in r.text and "138****5678" in r.text and "13812345678" not in r.text
    zhang = _staff_id(pages, "老张")
    assert _audit(pages, f"staff:{zhang}") == [("staff.create", "user:admin1")]
    assert {s.name: s.cards for s in bus.roster().staff}["老张"] == []

    r = pages.client.post(f"/admin/staff/{zhang}/cards", data={"csrf": csrf, "uid": "04 a1 b2 c3", "card_format": "hex"})
    assert r.status_code == 201, r.text
    section = r.text[r.text.index(f'data-staff="{zhang}"'):]
    assert "****B2C3" in section and "04A1B2C3" not in r.text  # as central's logs write a card
    # What the gate reads now: the card, canonical, on the retained roster (and the delta before it).
    assert {s.name: s.cards for s in bus.roster().staff}["老张"] == ["04A1B2C3"]
    assert any(topic == "sg/v1/s1/roster/delta" for topic, _p, _r in bus.sent)
    with pages.session() as db:
        card = db.exec(select(StaffCard).where(StaffCard.staff_id == zhang)).one()
        assert card.uid == "04A1B2C3"
        assert db.get(School, pages.ids["s1"]).roster_version == bus.roster().version
    assert _audit(pages, f"staff_card:{card.id}") == [("staff_card.create", "user:admin1")]

    # A card is removed by its row: the page never holds its number.
    r = pages.client.post(f"/admin/staff/{zhang}/cards/remove", data={"csrf": csrf, "card": str(card.id)})
    assert r.status_code == 200 and "已移除卡片 ****B2C3" in r.text
    assert {s.name: s.cards for s in bus.roster().staff}["老张"] == []
    # Another member's card row named on this member's form: not found.
    with pages.session() as db:
        db.add(StaffCard(school_id=pages.ids["s1"], staff_id=pages.ids["staffB"], uid="0A0B0C0D"))
        db.commit()
        other = db.exec(select(StaffCard).where(StaffCard.uid == "0A0B0C0D")).one().id
    assert pages.client.post(f"/admin/staff/{zhang}/cards/remove", data={"csrf": csrf, "card": str(other)}).status_code == 404


def test_a_deactivated_staff_member_leaves_the_gates_roster(pages):
    bus = pages.client.app.state.bus = RecordingBus()
    csrf = _as(pages, "admin1", "/admin/staff")
    staff_b = pages.ids["staffB"]
    # The form posts every field; an unticked "active" deactivates, an empty phone keeps the one on file.
    r = pages.client.post(f"/admin/staff/{staff_b}", data={"csrf": csrf, "name": "staffB", "phone": "", "gate_guard": "true"})
    assert r.status_code == 200, r.text
    assert f'data-staff="{staff_b}" data-active="no"' in r.text
    assert "staffB" not in {s.name for s in bus.roster().staff} and "staffA" in {s.name for s in bus.roster().staff}
    with pages.session() as db:
        row = db.get(Staff, staff_b)
        assert (row.active, row.gate_guard) == (False, True)
    assert ("staff.update", "user:admin1") in _audit(pages, f"staff:{staff_b}")


def test_bad_input_is_named_in_the_pages_language_and_what_was_typed_is_kept(pages):
    csrf = _as(pages, "admin1", "/admin/staff")
    r = pages.client.post("/admin/staff", data={"csrf": csrf, "name": " ", "kind": "volunteer", "phone": "13900001111"})
    assert r.status_code == 422 and '<p class="error" role="alert" data-form="add">请填写名称。</p>' in r.text
    assert 'value="13900001111"' in r.text and '<option value="volunteer" selected>' in r.text
    # A third party names their vendor (the service's rule, in the page's words).
    r = pages.client.post("/admin/staff", data={"csrf": csrf, "name": "外聘教练", "kind": "third_party"})
    assert r.status_code == 422 and "第三方人员须注明所属机构（P6.2）" in _text(r) and 'value="外聘教练"' in r.text
    staff_a = pages.ids["staffA"]
    r = pages.client.post(f"/admin/staff/{staff_a}/cards", data={"csrf": csrf, "uid": "XYZ", "card_format": "hex"})
    assert r.status_code == 422 and "卡号无效：'XYZ' 不是十六进制卡号" in _text(r)
    assert 'name="uid" required maxlength="64" autocomplete="off" value="XYZ"' in r.text and f'data-form="card-{staff_a}"' in r.text
    pages.client.get("/admin/staff?lang=en")
    r = pages.client.post(f"/admin/staff/{staff_a}/cards", data={"csrf": csrf, "uid": "XYZ", "card_format": "hex"})
    assert r.status_code == 422 and "bad card number: 'XYZ' is not a hexadecimal card number" in _text(r)
    with pages.session() as db:
        assert db.exec(select(StaffCard)).all() == []
        assert db.exec(select(Staff).where(col(Staff.kind).in_(["volunteer", "third_party"]))).all() == []


# --- vendors and their chain (P6.2) ------------------------------------------------------------------


def _decide(pages, csrf: str, vendor: int, step: str, decision: str = "approve", note: str = "", school: str | None = None):
    data = {"csrf": csrf, "step": step, "decision": decision, "note": note}
    if school:
        data["school"] = school
    return pages.client.post(f"/admin/vendors/{vendor}/approvals", data=data)


def test_the_vendor_chain_district_steps_are_the_district_accounts(pages):
    csrf = _as(pages, "admin1", "/admin/vendors")
    r = pages.client.post("/admin/vendors", data={"csrf": csrf, "name": "星光体育", "licence": "鲁教民 123"})
    assert r.status_code == 201 and "已添加机构 星光体育" in r.text
    with pages.session() as db:
        vendor = db.exec(select(Vendor).where(Vendor.name == "星光体育")).one().id
    # A third-party coach of the vendor is registered, but may not serve before the chain is through.
    r = pages.client.post("/admin/staff", data={"csrf": csrf, "name": "李教练", "kind": "third_party", "vendor": str(vendor)})
    assert r.status_code == 201 and "机构审批未完成，不得上岗" in r.text

    assert _decide(pages, csrf, vendor, "review_panel", note="家委会 3 人、教师 2 人").status_code == 201
    r = _decide(pages, csrf, vendor, "party_org", note="党支部 2030-9 号")
    assert r.status_code == 201 and f'data-vendor="{vendor}" data-state="pending" data-next="district"' in r.text
    # The district's step is shown to the school admin, with no form to take it.
    section = r.text[r.text.index(f'data-vendor="{vendor}"'):]
    assert 'data-waits="district"' in section and f'action="/admin/vendors/{vendor}/approvals"' not in section
    assert "等待“区教体局”审批（区教体局录入）" in section
    # Posted by hand anyway, the service refuses it.
    r = _decide(pages, csrf, vendor, "district")
    assert r.status_code == 403 and "区、市教育局的审批由区教体局账号录入" in _text(r)

    csrf = _as(pages, "district", "/admin/vendors?school=s1")
    page = pages.client.get("/admin/vendors?school=s1").text
    section = page[page.index(f'data-vendor="{vendor}"'):]
    assert f'action="/admin/vendors/{vendor}/approvals"' in section and 'name="step" value="district"' in section
    assert 'id="vendor-add"' not in page  # the district does not set a school up
    assert _decide(pages, csrf, vendor, "district", note="区教体局 2030-15 号", school="s1").status_code == 201
    r = _decide(pages, csrf, vendor, "city", note="市教育局 2030-8 号", school="s1")
    assert r.status_code == 201 and f'data-vendor="{vendor}" data-state="approved" data-next=""' in r.text
    with pages.session() as db:
        steps = [(a.step, a.approved, a.decided_by) for a in db.exec(select(VendorApproval).where(VendorApproval.vendor_id == vendor)
                                                                       .order_by(col(VendorApproval.id)))]
    assert steps == [("review_panel", True, "user:admin1"), ("party_org", True, "user:admin1"),
                     ("district", True, "user:district"), ("city", True, "user:district")]
    with pages.session() as db:
        approvals = db.exec(select(VendorApproval).where(VendorApproval.vendor_id == vendor).order_by(col(VendorApproval.id))).all()
    assert _audit(pages, f"vendor_approval:{approvals[2].id}") == [("vendor_approval.create", "user:district")]
    # The chain through, the coach may serve.
    csrf = _as(pages, "admin1", "/admin/staff")
    page = pages.client.get("/admin/staff").text
    coach = page[page.index(f'data-staff="{_staff_id(pages, "李教练")}"'):]
    assert "可上岗" in coach[:coach.index("</h2>")]


def test_a_district_account_may_not_take_the_schools_steps_nor_add_a_vendor(pages):
    csrf = _as(pages, "admin1", "/admin/vendors")
    pages.client.post("/admin/vendors", data={"csrf": csrf, "name": "科创机构"})
    with pages.session() as db:
        vendor = db.exec(select(Vendor)).one().id
    csrf = _as(pages, "district", "/admin/vendors?school=s1")
    assert 'data-waits="review_panel"' in pages.client.get("/admin/vendors?school=s1").text
    r = _decide(pages, csrf, vendor, "review_panel", school="s1")
    assert r.status_code == 403 and "评审小组和学校党组织的审批由学校管理员录入" in _text(r)
    assert pages.client.post("/admin/vendors", data={"csrf": csrf, "name": "区里的机构", "school": "s1"}).status_code == 403
    with pages.session() as db:
        assert db.exec(select(VendorApproval)).all() == [] and len(db.exec(select(Vendor)).all()) == 1


# --- accounts -----------------------------------------------------------------------------------------


def test_accounts_the_admin_may_grant_and_one_they_may_not(pages):
    csrf = _as(pages, "admin1", "/admin/accounts")
    page = pages.client.get("/admin/accounts").text
    assert re.findall(r'data-user="([^"]+)"', page) == ["admin1", "teacherA", "teacherB", "guard1", "finance1", "parentA", "parentB",
                                                         "parentBarred"]  # their school's only
    assert '<option value="district"' not in page and "$argon2" not in page
    # A teacher's account, linked to a staff member, with a password typed: never shown back.
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "teacherC", "password": "a long password 1",
                                                   "role": "teacher", "staff": str(pages.ids["staffB"])})
    assert r.status_code == 201, r.text
    assert "已新建账号 teacherC" in r.text and "a long password 1" not in r.text and "data-password" not in r.text
    assert re.search(r'data-user="teacherC" data-role="teacher" data-active="yes">\s*<td class="username">teacherC</td><td>教师</td><td>staffB</td>', r.text)
    with pages.session() as db:
        made = db.exec(select(User).where(User.username == "teacherC")).one()
        assert (made.role, made.school_id, made.staff_id) == ("teacher", pages.ids["s1"], pages.ids["staffB"])
    assert _audit(pages, f"user:{made.id}") == [("user.create", "user:admin1")]
    # The district role is not the school admin's to grant: refused, nothing made, what was typed kept.
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "bureau2", "password": "a long password 2", "role": "district"})
    assert r.status_code == 403 and "无权管理该账号" in r.text and 'value="bureau2"' in r.text
    # Bad input: a short name, a short password, a guardian's account linked to nobody.
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "x", "password": "a long password 3", "role": "guard"})
    assert r.status_code == 422 and "用户名须为 3–64 个字母、数字或 . _ @ -" in r.text and 'value="x"' in r.text
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "guard2", "password": "short", "role": "guard"})
    assert r.status_code == 422 and "密码至少 10 个字符" in r.text and 'value="guard2"' in r.text
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "parentC", "role": "guardian"})
    assert r.status_code == 422 and "家长账号须对应本校一位家长" in r.text
    with pages.session() as db:
        assert db.exec(select(User).where(col(User.username).in_(["bureau2", "x", "guard2", "parentC"]))).all() == []


def test_a_password_made_by_the_page_is_shown_once_and_logs_in_and_deactivating_ends_it(pages):
    csrf = _as(pages, "admin1", "/admin/accounts")
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "parentC", "role": "guardian",
                                                   "guardian": str(pages.ids["gB"])})
    assert r.status_code == 201, r.text
    password = html.unescape(re.search(r"<code data-password>([^<]+)</code>", r.text).group(1))
    assert len(password) >= 10 and "data-password" not in pages.client.get("/admin/accounts").text
    with pages.session() as db:
        made = db.exec(select(User).where(User.username == "parentC")).one()
    assert made.guardian_id == pages.ids["gB"]
    assert pages.client.post("/api/v1/auth/login", json={"username": "parentC", "password": password}).status_code == 200
    # Deactivated (the box unticked): the login is refused.
    r = pages.client.post(f"/admin/accounts/{made.id}", data={"csrf": csrf})
    assert r.status_code == 200 and 'data-user="parentC" data-role="guardian" data-active="no"' in r.text
    assert pages.client.post("/api/v1/auth/login", json={"username": "parentC", "password": password}).status_code == 401
    assert ("user.update", "user:admin1") in _audit(pages, f"user:{made.id}")
    # An account of another school, or the district's, is not on this school's page.
    with pages.session() as db:
        others = {u.username: u.id for u in db.exec(select(User).where(col(User.username).in_(["admin2", "district"])))}
    for other in others.values():
        assert pages.client.post(f"/admin/accounts/{other}", data={"csrf": csrf, "active": "true"}).status_code == 404


def test_the_district_makes_accounts_of_a_school_and_district_accounts(pages):
    csrf = _as(pages, "district", "/admin/accounts?school=s2")
    page = pages.client.get("/admin/accounts?school=s2").text
    assert re.findall(r'data-user="([^"]+)"', page) == ["admin2"] and '<option value="district"' in page
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "school": "s2", "username": "finance2", "password": PASSWORD,
                                                   "role": "finance"})
    assert r.status_code == 201, r.text
    r = pages.client.post("/admin/accounts", data={"csrf": csrf, "school": "s2", "username": "bureau2", "password": PASSWORD,
                                                   "role": "district"})
    assert r.status_code == 201, r.text
    with pages.session() as db:
        made = {u.username: u.school_id for u in db.exec(select(User).where(col(User.username).in_(["finance2", "bureau2"])))}
    assert made == {"finance2": pages.ids["s2"], "bureau2": None}
    # On s1's page, only s1's accounts: s2's admin is not found there, though the district manages it.
    with pages.session() as db:
        admin2 = db.exec(select(User).where(User.username == "admin2")).one().id
    assert pages.client.post(f"/admin/accounts/{admin2}", data={"csrf": csrf, "school": "s1"}).status_code == 404
    with pages.session() as db:
        assert db.get(User, admin2).active


# --- who may open the pages, and the forms' token -------------------------------------------------------

PAGES = ("/admin/staff", "/admin/vendors", "/admin/accounts")


def test_other_roles_are_refused(pages):
    posts = {"/admin/staff": {"name": "x", "kind": "teacher"}, "/admin/vendors": {"name": "x"},
             "/admin/accounts": {"username": "sneaky", "password": PASSWORD, "role": "school_admin"},
             f"/admin/staff/{pages.ids['staffA']}": {"name": "x"}, f"/admin/staff/{pages.ids['staffA']}/cards": {"uid": "04A1B2C3"}}
    for user in ("teacherA", "guard1", "finance1", "parentA"):
        pages.client.cookies.clear()
        log_in(pages.client, user)
        for path in PAGES:
            assert pages.client.get(path).status_code == 403, (user, path)
        csrf = csrf_of(pages.client.get("/logout").text)  # a good token: the role is what is refused
        for path, data in posts.items():
            assert pages.client.post(path, data={"csrf": csrf, **data}).status_code == 403, (user, path)
    with pages.session() as db:
        assert db.exec(select(User).where(User.username == "sneaky")).first() is None
        assert db.exec(select(StaffCard)).all() == [] and db.get(Staff, pages.ids["staffA"]).name == "staffA"


def test_another_schools_pages_are_not_found(pages):
    csrf = _as(pages, "admin1", "/admin/staff")
    for path in PAGES:
        assert pages.client.get(f"{path}?school=s2").status_code == 404, path
        assert pages.client.get(f"{path}?school=nowhere").status_code == 404, path
    assert pages.client.post("/admin/vendors", data={"csrf": csrf, "name": "x", "school": "s2"}).status_code == 404
    assert pages.client.post("/admin/accounts", data={"csrf": csrf, "username": "intruder", "password": PASSWORD, "role": "guard",
                                                      "school": "s2"}).status_code == 404
    # Another school's staff member named on this school's form: not found either.
    pages.client.cookies.clear()
    log_in(pages.client, "admin2")
    csrf = csrf_of(pages.client.get("/admin/staff").text)
    r = pages.client.post(f"/admin/staff/{pages.ids['staffA']}/cards", data={"csrf": csrf, "uid": "04A1B2C3"})
    assert r.status_code == 404 and "本校没有编号为" in r.text
    # The district opens a school's pages by its code only.
    pages.client.cookies.clear()
    log_in(pages.client, "district")
    assert pages.client.get("/admin/staff").status_code == 404
    assert pages.client.get("/admin/staff?school=s1").status_code == 200
    with pages.session() as db:
        assert db.exec(select(Vendor)).all() == [] and db.exec(select(StaffCard)).all() == []
        assert db.exec(select(User).where(User.username == "intruder")).first() is None


def test_a_form_without_its_token_is_refused(pages):
    _as(pages, "admin1", "/admin/staff")
    staff_a = pages.ids["staffA"]
    with pages.session() as db:
        admin1 = db.exec(select(User).where(User.username == "admin1")).one().id
    posts = {"/admin/staff": {"name": "x", "kind": "teacher"}, f"/admin/staff/{staff_a}": {"name": "改名"},
             f"/admin/staff/{staff_a}/cards": {"uid": "04A1B2C3"}, "/admin/vendors": {"name": "x"},
             "/admin/accounts": {"username": "sneaky", "password": PASSWORD, "role": "guard"}, f"/admin/accounts/{admin1}": {}}
    for path, data in posts.items():
        for token in ({}, {"csrf": "forged"}):
            r = pages.client.post(path, data={**data, **token})
            assert r.status_code == 403 and "表单已失效" in r.text, path
    with pages.session() as db:
        assert db.exec(select(StaffCard)).all() == [] and db.exec(select(Vendor)).all() == []
        assert db.get(Staff, staff_a).name == "staffA" and db.get(User, admin1).active
        assert db.exec(select(User).where(User.username == "sneaky")).first() is None


def test_the_pages_are_linked_from_home_for_the_admin_and_read_in_english(pages):
    _as(pages, "admin1", "/")
    home = pages.client.get("/").text
    assert all(f'href="{p}"' in home for p in PAGES)
    en = {p: pages.client.get(f"{p}?lang=en").text for p in PAGES}
    assert "Staff and cards" in en["/admin/staff"] and "Add a staff member" in en["/admin/staff"]
    assert "Vendors and their approval" in en["/admin/vendors"] and "Accounts" in en["/admin/accounts"]
    _as(pages, "teacherA", "/")
    assert not any(f'href="{p}"' in pages.client.get("/").text for p in PAGES)
