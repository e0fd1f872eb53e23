"""The role matrix, written by hand: every /api/v1 route against every role, at its own school and at another.

Each row of ``MATRIX`` is the status a caller gets, taken from README's role table ("Users, roles and
the audit log") and docs/policy.md, never from what a route declares: a route whose roles change
fails here until its row is changed by hand, and a new route fails until it has a row.

How to read a row::

    "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R"
     └──────── own school (s1) ────────┘   └─ another school ─┘

- left of ``|``: the caller at their own school s1: ``D`` district (it has no school and may use
  any), ``A`` school admin, ``T`` teacher (in charge of the group of child A1), ``G`` guard,
  ``F`` finance, ``P`` guardian (of child A1), ``-`` no token;
- right of ``|``: the same roles of school s2 making the very same request to s1 (the district has
  no other school, and no token has no school);
- a number is the status of a valid request (the real rows it names exist, its body is complete);
- ``R``: 403 refused for the role (the message names the role);
- ``S``: 403 refused for the school: "not yours", the answer of every ``{school}`` route to a role
  that may use it at its own school.

Routes without ``{school}`` answer for the caller's own school: a school admin of s2 lists s2's
accounts (200), may not create an account in s1 (403) nor find one of s1's (404).
"""

from __future__ import annotations

import itertools
import uuid
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from io import BytesIO

import pytest
from fastapi.routing import APIRoute
from PIL import Image
from sqlmodel import select

from central.accounts import access as accounts
from central.accounts import users
from central.accounts.access import Role
from central.billing import ledger
from central.billing import staffpay
from central.billing.models import FeePlan, Payment, Statement
from central.core import clock
from central.core.i18n import t
from central.kiosks.models import SafetyIncident
from central.notifications.models import EmergencyContact, Notification, SchoolChannel, WebhookSubscription
from central.pickup import codes as pickup
from central.programme import enrollment as consent
from central.programme import schedule
from central.programme import staff as staff_service
from central.programme.models import (
    CalendarDayCreate,
    CareSession,
    DismissalTimeCreate,
    DutyAssignment,
    Enrollment,
    EnrollmentCreate,
    InterestGroup,
    Staff,
    StaffCreate,
    TermCreate,
    VendorCreate,
)
from central.schools import registry
from central.schools.models import Guardian, GuardianLink, School, Student

from .conftest import PASSWORD

MATRIX = {
    # Safety log: the guard's events and incidents, the admin's safety logs, the district inspects.
    "GET /api/v1/schools/{school}/events": "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    "GET /api/v1/schools/{school}/incidents": "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    # Every school's incidents and those naming no known school: the district's alone.
    "GET /api/v1/incidents": "D=200 A=R T=R G=R F=R P=R -=401 | A=R T=R G=R F=R P=R",
    # Logging in is open; logging out and "who am I" are for every login.
    "POST /api/v1/auth/login": "D=200 A=200 T=200 G=200 F=200 P=200 -=200 | A=200 T=200 G=200 F=200 P=200",
    "POST /api/v1/auth/logout": "D=204 A=204 T=204 G=204 F=204 P=204 -=401 | A=204 T=204 G=204 F=204 P=204",
    "GET /api/v1/me": "D=200 A=200 T=200 G=200 F=200 P=200 -=401 | A=200 T=200 G=200 F=200 P=200",
    # Accounts: the district (any school) and a school admin (their school).
    "POST /api/v1/users": "D=201 A=201 T=R G=R F=R P=R -=401 | A=403 T=R G=R F=R P=R",
    "GET /api/v1/users": "D=200 A=200 T=R G=R F=R P=R -=401 | A=200 T=R G=R F=R P=R",
    "PATCH /api/v1/users/{user_id}": "D=200 A=200 T=R G=R F=R P=R -=401 | A=404 T=R G=R F=R P=R",
    "GET /api/v1/audit": "D=200 A=200 T=R G=R F=R P=R -=401 | A=200 T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/child-reads": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # Children: every role sees some (a teacher their groups', a guardian their own); A1 is seen by all.
    "GET /api/v1/schools/{school}/students": "D=200 A=200 T=200 G=200 F=200 P=200 -=401 | A=S T=S G=S F=S P=S",
    "GET /api/v1/schools/{school}/students/{student_no}": "D=200 A=200 T=200 G=200 F=200 P=200 -=401 | A=S T=S G=S F=S P=S",
    # Pickup codes: a guardian (or the school) issues and revokes them, the guard checks them.
    "POST /api/v1/schools/{school}/pickup-codes": "D=R A=201 T=R G=R F=R P=201 -=401 | A=S T=R G=R F=R P=S",
    # Not the district's (README: least data): children's and guardians' photos and live pickup codes serve the gate only.
    "GET /api/v1/schools/{school}/pickup-codes": "D=R A=200 T=R G=200 F=R P=200 -=401 | A=S T=R G=S F=R P=S",
    "DELETE /api/v1/schools/{school}/pickup-codes/{code_id}": "D=R A=200 T=R G=R F=R P=200 -=401 | A=S T=R G=R F=R P=S",
    "POST /api/v1/schools/{school}/pickup-codes/redeem": "D=R A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    # Photos: the admin and the guardian upload; the teacher sees their children's and those children's
    # guardians'; the guard recognises the school's children and guardians at the gate.
    "PUT /api/v1/schools/{school}/students/{student}/photo": "D=R A=200 T=R G=R F=R P=200 -=401 | A=S T=R G=R F=R P=S",
    # Not the district's (README: least data): children's and guardians' photos and live pickup codes serve the gate only.
    "GET /api/v1/schools/{school}/students/{student}/photo": "D=R A=200 T=200 G=200 F=R P=200 -=401 | A=S T=S G=S F=R P=S",
    "DELETE /api/v1/schools/{school}/students/{student}/photo": "D=R A=204 T=R G=R F=R P=204 -=401 | A=S T=R G=R F=R P=S",
    "PUT /api/v1/schools/{school}/guardians/{guardian_id}/photo": "D=R A=200 T=R G=R F=R P=200 -=401 | A=S T=R G=R F=R P=S",
    # Not the district's (README: least data): children's and guardians' photos and live pickup codes serve the gate only.
    "GET /api/v1/schools/{school}/guardians/{guardian_id}/photo": "D=R A=200 T=200 G=200 F=R P=200 -=401 | A=S T=S G=S F=R P=S",
    "DELETE /api/v1/schools/{school}/guardians/{guardian_id}/photo": "D=R A=204 T=R G=R F=R P=204 -=401 | A=S T=R G=R F=R P=S",
    # The public profile behind /public/{school}: the admin sets it, the district reads it.
    "GET /api/v1/schools/{school}/public-profile": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "PUT /api/v1/schools/{school}/public-profile": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # Setting the service up is the school admin's; the school's staff and the district read it.
    "POST /api/v1/schools/{school}/terms": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/terms": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "PUT /api/v1/schools/{school}/calendar/{day}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "DELETE /api/v1/schools/{school}/calendar/{day}": "D=R A=204 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/calendar": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "PUT /api/v1/schools/{school}/dismissal-times": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/dismissal-times": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "POST /api/v1/schools/{school}/groups": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/groups": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "GET /api/v1/schools/{school}/groups/{group_id}": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "PATCH /api/v1/schools/{school}/groups/{group_id}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/sessions/plan": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/sessions": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "POST /api/v1/schools/{school}/sessions/{session_id}/duty": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "DELETE /api/v1/schools/{school}/sessions/{session_id}/duty/{staff_id}": "D=R A=204 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/staff": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/staff": "D=200 A=200 T=200 G=200 F=200 P=R -=401 | A=S T=S G=S F=S P=R",
    "PATCH /api/v1/schools/{school}/staff/{staff_id}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/staff/{staff_id}/cards": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/staff/{staff_id}/cards/remove": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # Providers (P6.2): the school's steps are the admin's, the district's step the district's.
    "POST /api/v1/schools/{school}/vendors": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/vendors": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/vendors/{vendor_id}/approvals": "D=201 A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # The notice (P2.2): the admin publishes it, everyone of the school reads it, the family signs it.
    "POST /api/v1/schools/{school}/notice": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/notice": "D=200 A=200 T=200 G=200 F=200 P=200 -=401 | A=S T=S G=S F=S P=S",
    # Enrollment (P2.1): the guardian applies, the class teacher reviews, the school approves; the
    # district reads and takes no step; the school and the family sign (README "Users, roles").
    "POST /api/v1/schools/{school}/enrollments": "D=R A=201 T=R G=R F=R P=201 -=401 | A=S T=R G=R F=R P=S",
    "GET /api/v1/schools/{school}/enrollments": "D=200 A=200 T=200 G=R F=R P=200 -=401 | A=S T=S G=R F=R P=S",
    "GET /api/v1/schools/{school}/enrollments/{enrollment_id}": "D=200 A=200 T=200 G=R F=R P=200 -=401 | A=S T=S G=R F=R P=S",
    "POST /api/v1/schools/{school}/enrollments/{enrollment_id}/review": "D=R A=200 T=200 G=R F=R P=R -=401 | A=S T=S G=R F=R P=R",
    "POST /api/v1/schools/{school}/enrollments/{enrollment_id}/approve": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/enrollments/{enrollment_id}/signatures": "D=R A=200 T=R G=R F=R P=200 -=401 | A=S T=R G=R F=R P=S",
    "POST /api/v1/schools/{school}/enrollments/{enrollment_id}/reject": "D=R A=200 T=200 G=R F=R P=R -=401 | A=S T=S G=R F=R P=R",
    "POST /api/v1/schools/{school}/enrollments/{enrollment_id}/withdraw": "D=R A=200 T=R G=R F=R P=200 -=401 | A=S T=R G=R F=R P=S",
    # A guardian's link to a child (pickup right, custody bar, dates): the admin's.
    "PATCH /api/v1/schools/{school}/students/{student}/guardians/{guardian_id}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # The kiosk roster as last published: the gate's guard, the admin, the district.
    "GET /api/v1/schools/{school}/roster": "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    "POST /api/v1/schools/{school}/roster/refresh": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # The kiosks' own routes take the kiosk's signature and no login: a person's token opens nothing.
    "GET /api/v1/kiosks/{school}/{kiosk}/photos": "D=401 A=401 T=401 G=401 F=401 P=401 -=401 | A=401 T=401 G=401 F=401 P=401",
    "GET /api/v1/kiosks/{school}/{kiosk}/photos/{kind}/{ref}": "D=401 A=401 T=401 G=401 F=401 P=401 -=401 | A=401 T=401 G=401 F=401 P=401",
    "GET /api/v1/kiosks/{school}/{kiosk}/pickup-codes": "D=401 A=401 T=401 G=401 F=401 P=401 -=401 | A=401 T=401 G=401 F=401 P=401",
    "GET /api/v1/kiosks/{school}/{kiosk}/feed": "D=401 A=401 T=401 G=401 F=401 P=401 -=401 | A=401 T=401 G=401 F=401 P=401",
    # Each gate's health (issue 13): the guard on duty, the admin, the district.
    "GET /api/v1/schools/{school}/kiosks": "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    # Fees (P7.2): the school sets them; finance and the district read them.
    "PUT /api/v1/schools/{school}/terms/{term_id}/fee-plan": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/fee-plans": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    # Monthly statements (issue 15): finance bills a month; finance and the school admin read them — each
    # names children and shows the P7.3 flag, which no teacher, guard, guardian nor the district sees.
    "POST /api/v1/schools/{school}/statements": "D=R A=R T=R G=R F=200 P=R -=401 | A=R T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/statements": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/statements/outstanding": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/statements.xlsx": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/statements.pdf": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    # Payments (issue 15): finance records and imports them; finance and the school admin see the unmatched.
    "POST /api/v1/schools/{school}/payments": "D=R A=R T=R G=R F=201 P=R -=401 | A=R T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/payments/import": "D=R A=R T=R G=R F=200 P=R -=401 | A=R T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/payments/unmatched": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    # Matching a payment by hand moves money out of suspense: finance's alone.
    "POST /api/v1/schools/{school}/payments/{payment_id}/match": "D=R A=R T=R G=R F=200 P=R -=401 | A=R T=R G=R F=S P=R",
    # A month's reconciliation (issue 15): its lines name exempt children (P7.3), so finance and the admin only.
    "GET /api/v1/schools/{school}/reconciliation/monthly": "D=R A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/reconciliation/daily": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    # Staff pay (P8.1): finance works the month out; the school admin sets the share, confirms the month
    # and confirms a day's planned duty; the district inspects. Colleagues' pay is not a teacher's or the gate's.
    "POST /api/v1/schools/{school}/staff-pay": "D=R A=R T=R G=R F=200 P=R -=401 | A=R T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/staff-pay": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/staff-pay/confirm": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/staff-pay/terms/{term_id}": "D=R A=R T=R G=R F=200 P=R -=401 | A=R T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/staff-pay/terms/{term_id}": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/staff-pay/terms/{term_id}/confirm": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/staff-pay/settings": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "PUT /api/v1/schools/{school}/staff-pay/settings": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/annual-reports/{year}": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/annual-reports/{year}": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/district/annual-reports/{year}": "D=200 A=R T=R G=R F=R P=R -=401 | A=R T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/duty/confirmations": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # The alerts about children the gates raised (a child's record: each read is logged).
    "GET /api/v1/schools/{school}/alerts": "D=200 A=200 T=R G=200 F=R P=R -=401 | A=S T=R G=S F=R P=R",
    # The service fund's ledger (P7.5): finance records spending and reverses entries; the school admin
    # oversees the fund and the district inspects it, reading only.
    "GET /api/v1/schools/{school}/ledger": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "GET /api/v1/schools/{school}/ledger/balances": "D=200 A=200 T=R G=R F=200 P=R -=401 | A=S T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/ledger/spending": "D=R A=R T=R G=R F=201 P=R -=401 | A=R T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/ledger/{entry_id}/reverse": "D=R A=R T=R G=R F=201 P=R -=401 | A=R T=R G=R F=S P=R",
    "POST /api/v1/schools/{school}/ledger/payouts": "D=R A=R T=R G=R F=201 P=R -=401 | A=R T=R G=R F=S P=R",
    # The safety list (issue 14): the principal reads and reviews; the district reads every school's and
    # reviews none (it inspects); teachers, guards, finance and guardians: no (docs/safety.md).
    "GET /api/v1/schools/{school}/safety/items": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/safety/items.csv": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/safety/items.xlsx": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/safety/items/{item}": "D=200 A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/safety/items/{item}/acknowledge": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/safety/items/{item}/follow-up": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/safety/items/{item}/close": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # The notifications to guardians (issue 16): the school admin sees what was sent and what was parked.
    "GET /api/v1/schools/{school}/notifications": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # Excused absences (请假, issue 14): the teacher of the child's group or the school marks them; the
    # district reads them; the live roster shows them.
    "PUT /api/v1/schools/{school}/students/{student}/absences/{day}": "D=R A=200 T=200 G=R F=R P=R -=401 | A=S T=S G=R F=R P=R",
    "GET /api/v1/schools/{school}/absences": "D=200 A=200 T=200 G=R F=R P=R -=401 | A=S T=S G=R F=R P=R",
    # A guardian's own choices and consents (issue 16); the admin sees and records choices, and the school's channels.
    "GET /api/v1/schools/{school}/me/notifications": "D=R A=R T=R G=R F=R P=200 -=401 | A=R T=R G=R F=R P=S",
    "PUT /api/v1/schools/{school}/me/notifications": "D=R A=R T=R G=R F=R P=200 -=401 | A=R T=R G=R F=R P=S",
    "PUT /api/v1/schools/{school}/me/notifications/consents/{channel}": "D=R A=R T=R G=R F=R P=200 -=401 | A=R T=R G=R F=R P=S",
    "DELETE /api/v1/schools/{school}/me/notifications/consents/{channel}": "D=R A=R T=R G=R F=R P=204 -=401 | A=R T=R G=R F=R P=S",
    "GET /api/v1/schools/{school}/notification-preferences/{guardian_id}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "PUT /api/v1/schools/{school}/notification-preferences/{guardian_id}": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/notification-channels": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/notification-channels": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "DELETE /api/v1/schools/{school}/notification-channels/{channel_id}": "D=R A=204 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # A child's emergency contacts (the ladder's second step), the school's own SMS gateway and mail
    # server, and a parked notification sent again: the school admin's.
    "GET /api/v1/schools/{school}/students/{student}/emergency-contacts": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/students/{student}/emergency-contacts": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "DELETE /api/v1/schools/{school}/students/{student}/emergency-contacts/{contact_id}": "D=R A=204 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/notification-settings": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "PUT /api/v1/schools/{school}/notification-settings": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/notifications/{notification_id}/resend": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    # Integrators' webhooks: the school admin subscribes and reads the deliveries.
    "GET /api/v1/schools/{school}/webhooks": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "POST /api/v1/schools/{school}/webhooks": "D=R A=201 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "DELETE /api/v1/schools/{school}/webhooks/{subscription_id}": "D=R A=204 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
    "GET /api/v1/schools/{school}/webhooks/{subscription_id}/deliveries": "D=R A=200 T=R G=R F=R P=R -=401 | A=S T=R G=R F=R P=R",
}

# Who makes each call: the letter's account at s1 (left of "|") and at s2 (right of "|").
OWN = {"D": "district", "A": "admin1", "T": "teacherA", "G": "guard1", "F": "finance1", "P": "parentA", "-": None}
OTHER = {"A": "admin2", "T": "teacher2", "G": "guard2", "F": "finance2", "P": "parent2"}
ROLE = {"D": Role.DISTRICT, "A": Role.SCHOOL_ADMIN, "T": Role.TEACHER, "G": Role.GUARD, "F": Role.FINANCE, "P": Role.GUARDIAN}
CELL = re.compile(r"^(?:[1-5]\d\d|R|S)$")
DAY = date(2030, 9, 3)  # "today" for pickup codes: the school's date, fixed so no test reads the clock


def _cells(row: str) -> tuple[dict[str, str], dict[str, str]]:
    own, other = row.split("|")
    return (dict(cell.split("=") for cell in own.split()), dict(cell.split("=") for cell in other.split()))


# --- the world the calls are made in ---------------------------------------------------------------


@dataclass
class Req:
    """One call's request, as far as it differs from the defaults (``Matrix.defaults``)."""

    values: dict[str, object] = field(default_factory=dict)  # path parameters
    json: object = None
    files: dict | None = None
    data: dict | None = None  # form fields beside ``files``
    params: dict | None = None
    token: str | None = None  # instead of the caller's own


@dataclass
class Matrix:
    """The conftest world (s1 with its children, groups and accounts; s2 with admin2), plus one account
    of each school role at s2, a guardian of s2's child X1, a spare account of s1, a term, dismissal
    times, a notice and a session; ``fresh_*`` make a new row for each call that uses one up."""

    world: object
    ids: dict[str, int]
    counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def n(self) -> int:
        return next(self.counter)

    def principal(self, user: str) -> accounts.Principal:
        with self.world.session() as session:
            return users.principal_for_token(session, token=self.world.tokens[user])

    def defaults(self) -> dict[str, object]:
        ids = self.ids
        return {
            "school": "s1", "student_no": "A1", "student": "A1", "guardian_id": ids["gA"], "group_id": ids["groupA"],
            "staff_id": ids["staffB"], "enrollment_id": ids["enrollmentA1"], "user_id": ids["spare1"],
            "session_id": ids["session"], "kiosk": "gate-1", "kind": "students", "ref": "A1", "day": "2030-10-01",
        }

    def fresh_group(self) -> int:
        """A group of A1's grade in teacherA's charge, so teacherA reviews its applications."""
        with self.world.session() as session:
            group = InterestGroup(
                school_id=self.ids["s1"], name=f"组{self.n()}", category="homework", capacity=30, place="102",
                grades=["三年级"], weekdays=[1, 2, 3, 4, 5], staff_id=self.ids["staffA"], created_by="test",
            )
            session.add(group)
            session.commit()
            return group.id

    def fresh_enrollment(self, state: str) -> int:
        """A1's application (by its guardian gA) to a new group, taken as far as ``state``."""
        group = self.fresh_group()
        school = self.ids["s1"]
        with self.world.session() as session:
            data = EnrollmentCreate(student="A1", guardian_id=self.ids["gA"], application="书面申请", group_id=group)
            row = consent.apply(session, school=session.get(School, school), data=data, actor="test")
            if state in (consent.CLASS_REVIEWED, consent.APPROVED):
                consent.review(session, school=session.get(School, school), enrollment_id=row.id, actor="test")
            if state == consent.APPROVED:
                consent.approve(session, school=session.get(School, school), enrollment_id=row.id, actor="test")
            return row.id

    def fresh_code(self) -> tuple[int, str]:
        """A live code parentA issued for A1, today."""
        with self.world.session() as session:
            issued = pickup.issue_code(
                session, principal=self.principal("parentA"), school=registry.get_school(session, "s1"), student="A1", day=DAY, person="张阿姨", digits=6
            )
            return issued.id, issued.code

    def photo(self, **owner) -> None:
        settings = self.world.settings
        with self.world.session() as session:
            pickup.put_photo(
                session, principal=self.principal("admin1"), school=registry.get_school(session, "s1"), data=PNG, max_px=settings.thumbnail_px,
                max_bytes=settings.photo_max_bytes, max_pixels=settings.photo_max_pixels, **owner,
            )

    def fresh_staff(self) -> int:
        with self.world.session() as session:
            data = StaffCreate(name=f"值班{self.n()}", kind="teacher")
            return staff_service.create_staff(session, school=session.get(School, self.ids["s1"]), data=data, actor="test").id

    def fresh_duty(self) -> int:
        staff = self.fresh_staff()
        with self.world.session() as session:
            schedule.assign_duty(session, school=session.get(School, self.ids["s1"]), session_id=self.ids["session"], staff_id=staff, actor="test")
        return staff

    def fresh_past_duty(self) -> int:
        """A new staff member on duty at a new group's session of 2030-09-02, before "today"; no taps."""
        staff, group = self.fresh_staff(), self.fresh_group()
        with self.world.session() as session:
            care = CareSession(school_id=self.ids["s1"], group_id=group, day=date(2030, 9, 2), place="101", created_by="test",
                               starts_at=datetime(2030, 9, 2, 8, 0, tzinfo=UTC), ends_at=datetime(2030, 9, 2, 9, 20, tzinfo=UTC))
            session.add(care)
            session.flush()
            session.add(DutyAssignment(session_id=care.id, staff_id=staff, assigned_by="test"))
            session.commit()
        return staff

    def fresh_pay_run(self) -> str:
        """A draft pay run of s1 for a month of its own (no income, nobody served)."""
        month = f"{2050 + self.n()}-01"
        with self.world.session() as session:
            staffpay.run_pay(session, school=session.get(School, self.ids["s1"]), month=month, fee_income_fen=0, subsidy_fen=0, actor="test")
        return month

    def fresh_term(self) -> int:
        """A term of s1 of its own (a year far ahead), with nothing paid in it."""
        year = 2100 + self.n()
        with self.world.session() as session:
            return schedule.add_term(session, school=session.get(School, self.ids["s1"]), actor="test", data=TermCreate(
                name=f"{year} 秋", starts_on=date(year, 9, 1), ends_on=date(year + 1, 1, 15))).id

    def fresh_term_pay_run(self) -> int:
        """A draft pay run of a fresh term of s1 (no income, nobody served)."""
        term_id = self.fresh_term()
        with self.world.session() as session:
            staffpay.run_pay(session, school=session.get(School, self.ids["s1"]), term_id=term_id, fee_income_fen=0, subsidy_fen=0, actor="test")
        return term_id

    def fresh_card(self) -> str:
        uid = f"0B{self.n():06X}"
        with self.world.session() as session:
            staff_service.add_card(session, school=session.get(School, self.ids["s1"]), staff_id=self.ids["staffB"], uid=uid, actor="test")
        return uid

    def fresh_vendor(self, *, steps_done: tuple[str, ...] = ()) -> int:
        with self.world.session() as session:
            vendor = staff_service.create_vendor(session, school=session.get(School, self.ids["s1"]), data=VendorCreate(name=f"机构{self.n()}"), actor="test")
            for step in steps_done:
                staff_service.decide_step(session, school=session.get(School, self.ids["s1"]), vendor_id=vendor.id, step=step, approved=True, actor="test",
                                           role=staff_service.STEP_RECORDERS[step])
            return vendor.id

    def fresh_unmatched(self) -> tuple[int, str]:
        """A payment to s1 that matched nothing, and an issued statement of A1's (a month of its own) to match it to."""
        n = self.n()
        with self.world.session() as session:
            statement = Statement(school_id=self.ids["s1"], student_id=self.ids["A1"], month=f"{2100 + n}-01", state="issued",
                                  term_id=self.ids["term"], plan_kind="monthly", plan_amount_fen=8000, cap_fen=10_000,
                                  service_days=1, days_in_service=1, days_attended=0, charge_fen=8000, billed_by="test")
            payment = Payment(school_id=self.ids["s1"], reference="王小明课后服务费", amount_fen=8000, paid_on=date(2030, 9, 5),
                              channel="bank", recorded_by="test")
            session.add_all([statement, payment])
            session.flush()
            statement.reference = f"SG{2100 + n}01-{statement.id:06d}"
            session.commit()
            return payment.id, statement.reference

    def fresh_entry(self) -> int:
        """A spending of s1 not reversed yet."""
        with self.world.session() as session:
            entry = ledger.post(session, school=session.get(School, self.ids["s1"]), kind="spending", ref="", actor="test",
                                category="training", lines=[ledger.Line("training", 1_000), ledger.Line("bank", credit_fen=1_000)])
            session.commit()
            return entry.id

    def fresh_holiday(self) -> str:
        day = date(2030, 11, 1 + self.n() % 28)
        with self.world.session() as session:
            schedule.set_calendar_day(session, school=session.get(School, self.ids["s1"]), data=CalendarDayCreate(day=day, kind="holiday"), actor="test")
        return day.isoformat()

    def notice_version(self) -> int:
        with self.world.session() as session:
            return consent.current_notice(session, school=session.get(School, self.ids["s1"])).version

    def login(self, user: str) -> str:
        r = self.world.client.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["access_token"]


def _png() -> bytes:
    out = BytesIO()
    Image.new("RGB", (40, 30), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


PNG = _png()

# user name -> (role, school, guardian key, staff key); made at s2 beside conftest's admin2, and one spare at s1.
MORE_USERS = {
    "teacher2": ("teacher", "s2", None, "staff2"),
    "guard2": ("guard", "s2", None, None),
    "finance2": ("finance", "s2", None, None),
    "parent2": ("guardian", "s2", "g2", None),
    "spare1": ("finance", "s1", None, None),  # the account PATCH /users/{user_id} changes
}


@pytest.fixture
def matrix(world, monkeypatch) -> Matrix:
    monkeypatch.setattr(clock, "local_today", lambda school: DAY)
    ids = dict(world.ids)
    with world.session() as session:
        s1, s2 = ids["s1"], ids["s2"]
        staff2 = Staff(school_id=s2, name="staff2", kind="teacher", created_by="test")
        g2 = Guardian(school_id=s2, name="孙父", phone="13611112222")
        care = CareSession(
            school_id=s1, group_id=ids["groupA"], day=date(2030, 9, 16), place="101", created_by="test",
            starts_at=datetime(2030, 9, 16, 8, 0, tzinfo=UTC), ends_at=datetime(2030, 9, 16, 9, 20, tzinfo=UTC),
        )
        session.add_all([staff2, g2, care])
        session.flush()
        session.add(GuardianLink(guardian_id=g2.id, student_id=ids["X1"], relation="父亲"))
        ids |= {"staff2": staff2.id, "g2": g2.id, "session": care.id}
        ids["enrollmentA1"] = session.exec(select(Enrollment.id).where(Enrollment.student_id == ids["A1"])).one()
        session.commit()
        for name, (role, school, guardian, staff) in MORE_USERS.items():
            user = users.create_user(
                session, actor=accounts.CLI, username=name, password=PASSWORD, role=role, school=school,
                guardian_id=ids.get(guardian), staff_id=ids.get(staff),
            )
            ids[name] = user.id
        ids["term"] = schedule.add_term(
            session, school=session.get(School, s1), data=TermCreate(name="2030 秋", starts_on=date(2030, 8, 26), ends_on=date(2031, 1, 17)), actor="test"
        ).id
        for season in ("summer", "winter"):
            schedule.set_dismissal(
                session, school=session.get(School, s1), data=DismissalTimeCreate(grade="三年级", season=season, dismissal=time(16, 0)), actor="test"
            )
        consent.publish_notice(session, school=session.get(School, s1), text="告知书", actor="test")
    m = Matrix(world, ids)
    for name in MORE_USERS:
        world.tokens[name] = m.login(name)
    return m


# --- a valid request for each route -------------------------------------------------------------
# Each is made for every caller; a row it uses up (a code, an enrollment step, a photo) is made anew
# for each call, so every caller meets the same state and "allowed" is seen as success.

REQUESTS = {}


def request(*routes: str):
    def register(make):
        for route in routes:
            REQUESTS[route] = make
        return make

    return register


@request("POST /api/v1/auth/login")
def _login(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"username": user or "finance1", "password": PASSWORD})


@request("POST /api/v1/auth/logout")
def _logout(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(token=m.login(user) if user else None)  # a second login of the caller's: the first stays


@request("POST /api/v1/users")
def _new_user(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"username": f"new{m.n()}", "password": PASSWORD, "role": "finance", "school": "s1"})


@request("PATCH /api/v1/users/{user_id}")
def _change_user(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"active": True})


@request("POST /api/v1/schools/{school}/pickup-codes")
def _issue(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"student": "A1", "day": DAY.isoformat(), "person": "张阿姨"})


@request("DELETE /api/v1/schools/{school}/pickup-codes/{code_id}")
def _revoke(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"code_id": m.fresh_code()[0]})


@request("POST /api/v1/schools/{school}/pickup-codes/redeem")
def _redeem(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"student": "A1", "code": m.fresh_code()[1]})


@request("PUT /api/v1/schools/{school}/students/{student}/photo")
@request("PUT /api/v1/schools/{school}/guardians/{guardian_id}/photo")
def _upload(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(files={"file": ("photo.png", PNG, "image/png")})


@request("GET /api/v1/schools/{school}/students/{student}/photo")
@request("DELETE /api/v1/schools/{school}/students/{student}/photo")
def _student_photo(m: Matrix, letter: str, user: str | None) -> Req:
    m.photo(student="A1")
    return Req()


@request("GET /api/v1/schools/{school}/guardians/{guardian_id}/photo")
@request("DELETE /api/v1/schools/{school}/guardians/{guardian_id}/photo")
def _guardian_photo(m: Matrix, letter: str, user: str | None) -> Req:
    m.photo(guardian_id=m.ids["gA"])
    return Req()


@request("PUT /api/v1/schools/{school}/public-profile")
def _profile(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"fee_fen": 5000, "contact": "校办 0632-1234567", "apply_note": "向班主任领取申请表"})


@request("POST /api/v1/schools/{school}/terms")
def _term(m: Matrix, letter: str, user: str | None) -> Req:
    year = 2040 + m.n()  # clear of every other term
    return Req(json={"name": f"{year} 秋", "starts_on": f"{year}-09-01", "ends_on": f"{year + 1}-01-15"})


@request("PUT /api/v1/schools/{school}/calendar/{day}")
def _holiday(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"day": "2030-10-01"}, json={"day": "2030-10-01", "kind": "holiday", "note": "国庆"})


@request("PUT /api/v1/schools/{school}/students/{student}/absences/{day}")
def _excuse(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"day": "2030-10-08"}, json={"note": "发烧请假"})


@request("GET /api/v1/schools/{school}/absences")
def _excused(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"day": "2030-10-08"})


@request("DELETE /api/v1/schools/{school}/calendar/{day}")
def _unmark(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"day": m.fresh_holiday()})


@request("PUT /api/v1/schools/{school}/terms/{term_id}/fee-plan")
def _fee_plan(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"term_id": m.ids["term"]}, json={"kind": "monthly", "amount_fen": 8000})


@request("POST /api/v1/schools/{school}/statements")
def _bill(m: Matrix, letter: str, user: str | None) -> Req:
    # September has the session of A1's group on the 16th; the term needs a fee plan to bill it.
    with m.world.session() as session:
        if session.exec(select(FeePlan).where(FeePlan.term_id == m.ids["term"])).first() is None:
            session.add(FeePlan(school_id=m.ids["s1"], term_id=m.ids["term"], kind="monthly", amount_fen=8000, set_by="test"))
            session.commit()
    return Req(params={"month": "2030-09"})


@request("GET /api/v1/schools/{school}/statements")
@request("GET /api/v1/schools/{school}/statements/outstanding")
@request("GET /api/v1/schools/{school}/statements.xlsx")
@request("GET /api/v1/schools/{school}/statements.pdf")
@request("GET /api/v1/schools/{school}/reconciliation/monthly")
def _statements(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"month": "2030-09"})


@request("POST /api/v1/schools/{school}/payments")
def _payment(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"reference": "SG203009-000001", "amount_fen": 8000, "paid_on": "2030-09-05", "channel": "cash"})


@request("POST /api/v1/schools/{school}/payments/import")
def _payments_file(m: Matrix, letter: str, user: str | None) -> Req:
    csv = f"日期,金额,备注\n2030-09-05,80.00,SG203009-{m.n():06d}\n".encode()
    return Req(files={"file": ("bank.csv", csv, "text/csv")},
               data={"channel": "bank", "reference_column": "备注", "amount_column": "金额", "date_column": "日期"})


@request("POST /api/v1/schools/{school}/payments/{payment_id}/match")
def _match(m: Matrix, letter: str, user: str | None) -> Req:
    payment, reference = m.fresh_unmatched()
    return Req(values={"payment_id": payment}, json={"reference": reference})


@request("POST /api/v1/schools/{school}/ledger/spending")
def _spending(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"category": "training", "amount_fen": 3_000, "memo": "急救培训"})


@request("POST /api/v1/schools/{school}/ledger/payouts")
def _payout(m: Matrix, letter: str, user: str | None) -> Req:
    with m.world.session() as session:  # staff pay owed, so the payout is within what is owed
        ledger.post(session, school=session.get(School, m.ids["s1"]), kind="staff_pay", ref="", actor="test",
                    lines=[ledger.Line("staff_pay", 1_000), ledger.Line("staff_pay_payable", credit_fen=1_000)])
        session.commit()
    return Req(json={"payable": "staff_pay_payable", "amount_fen": 1_000, "memo": "九月绩效"})


@request("POST /api/v1/schools/{school}/ledger/{entry_id}/reverse")
def _reverse(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"entry_id": m.fresh_entry()}, json={"reason": "发票作废"})
@request("GET /api/v1/schools/{school}/reconciliation/daily")
def _daily(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"day": "2030-09-02"})


@request("GET /api/v1/schools/{school}/safety/items/{item}", "POST /api/v1/schools/{school}/safety/items/{item}/acknowledge",
         "POST /api/v1/schools/{school}/safety/items/{item}/follow-up", "POST /api/v1/schools/{school}/safety/items/{item}/close")
def _safety_item(m: Matrix, letter: str, user: str | None) -> Req:
    """A new item for each call (a closed one takes no more steps): a bad signature at s1's gate."""
    with m.world.session() as session:
        row = SafetyIncident(school_id=m.ids["s1"], kiosk="gate-1", kind="bad_signature", detail="seq 1: the HMAC does not match")
        session.add(row)
        session.commit()
        return Req(values={"item": f"incident:{row.id}"}, json={"note": "已核实"})


@request("GET /api/v1/schools/{school}/notifications")
def _notifications(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"state": "parked"})


@request("GET /api/v1/schools/{school}/me/notifications", "DELETE /api/v1/schools/{school}/me/notifications/consents/{channel}")
def _my_notifications(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"channel": "sms"})


@request("PUT /api/v1/schools/{school}/me/notifications")
def _set_my_notifications(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"events": ["picked_up", "checked_in"], "quiet_from": "21:00:00", "quiet_until": "07:00:00"})


@request("PUT /api/v1/schools/{school}/me/notifications/consents/{channel}")
def _consent(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"channel": "sms"}, json={"address": "+8613900000001", "language": "en"})


@request("GET /api/v1/schools/{school}/notification-preferences/{guardian_id}")
def _guardian_notifications(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"guardian_id": m.ids["gA"]})


@request("PUT /api/v1/schools/{school}/notification-preferences/{guardian_id}")
def _set_guardian_notifications(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"guardian_id": m.ids["gA"]}, json={"channels": ["sms"]})


@request("GET /api/v1/schools/{school}/notification-channels", "POST /api/v1/schools/{school}/notification-channels")
def _notification_channels(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"channel": "wecom", "address": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"})


@request("GET /api/v1/schools/{school}/webhooks", "POST /api/v1/schools/{school}/webhooks")
def _webhooks(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"url": "https://erp.school.example/hook", "kinds": ["picked_up"]})


@request("DELETE /api/v1/schools/{school}/webhooks/{subscription_id}",
         "GET /api/v1/schools/{school}/webhooks/{subscription_id}/deliveries")
def _webhook(m: Matrix, letter: str, user: str | None) -> Req:
    with m.world.session() as session:
        row = WebhookSubscription(school_id=m.ids["s1"], url="https://erp.school.example/hook", kinds=["picked_up"], secret="s")
        session.add(row)
        session.commit()
        return Req(values={"subscription_id": row.id})


@request("GET /api/v1/schools/{school}/students/{student}/emergency-contacts",
         "POST /api/v1/schools/{school}/students/{student}/emergency-contacts")
def _emergency_contacts(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"name": "李阿姨", "channel": "sms", "address": "+8613900000002", "consented": True})


@request("DELETE /api/v1/schools/{school}/students/{student}/emergency-contacts/{contact_id}")
def _emergency_contact(m: Matrix, letter: str, user: str | None) -> Req:
    with m.world.session() as session:
        child = session.exec(select(Student).where(Student.school_id == m.ids["s1"], Student.student_no == "A1")).one()
        row = EmergencyContact(student_id=child.id, name="李阿姨", channel="sms", address="+8613900000002")
        session.add(row)
        session.commit()
        return Req(values={"contact_id": row.id})


@request("GET /api/v1/schools/{school}/notification-settings", "PUT /api/v1/schools/{school}/notification-settings")
def _school_notify(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"sms_url": "https://sms.example.cn/send?to={to}&text={text}"})


@request("POST /api/v1/schools/{school}/notifications/{notification_id}/resend")
def _resend(m: Matrix, letter: str, user: str | None) -> Req:
    """A new parked notification for each call (one sent again is pending, and a second resend is a 409)."""
    with m.world.session() as session:
        row = Notification(school_id=m.ids["s1"], event_ref=f"event:matrix-{uuid.uuid4().hex[:8]}", recipient=f"g{m.ids['gA']}",
                           kind="picked_up", channel="sms", address="+8613900000001", body="小明已被接走。", language="zh_CN",
                           state="parked", tries=6, next_try_at=datetime(2030, 9, 2, 8, 0, tzinfo=UTC))
        session.add(row)
        session.commit()
        return Req(values={"notification_id": row.id})


@request("DELETE /api/v1/schools/{school}/notification-channels/{channel_id}")
def _remove_channel(m: Matrix, letter: str, user: str | None) -> Req:
    with m.world.session() as session:
        row = SchoolChannel(school_id=m.ids["s1"], channel="wecom", address="https://example.invalid/k")
        session.add(row)
        session.commit()
        return Req(values={"channel_id": row.id})


@request("GET /api/v1/schools/{school}/annual-reports/{year}", "POST /api/v1/schools/{school}/annual-reports/{year}",
         "GET /api/v1/district/annual-reports/{year}")
def _annual_report(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"year": 2030})


@request("POST /api/v1/schools/{school}/staff-pay")
def _pay_staff(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"month": "2030-08"}, json={"fee_income_fen": 0, "subsidy_fen": 0})


@request("GET /api/v1/schools/{school}/staff-pay")
def _staff_pay(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"month": m.fresh_pay_run()})


@request("POST /api/v1/schools/{school}/staff-pay/confirm")
def _confirm_pay(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"month": m.fresh_pay_run()})


@request("POST /api/v1/schools/{school}/staff-pay/terms/{term_id}")
def _pay_staff_term(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"term_id": m.fresh_term()}, json={"fee_income_fen": 0, "subsidy_fen": 0})


@request("GET /api/v1/schools/{school}/staff-pay/terms/{term_id}", "POST /api/v1/schools/{school}/staff-pay/terms/{term_id}/confirm")
def _term_pay(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"term_id": m.fresh_term_pay_run()})


@request("PUT /api/v1/schools/{school}/staff-pay/settings")
def _pay_setting(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"share_percent": 85, "volunteer_allowance_fen": 200})


@request("POST /api/v1/schools/{school}/duty/confirmations")
def _confirm_duty(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"staff_id": m.fresh_past_duty(), "day": "2030-09-02", "reason": "门禁故障，未刷卡"})


@request("PUT /api/v1/schools/{school}/dismissal-times")
def _dismissal(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"grade": "三年级", "season": "summer", "dismissal": "16:00:00"})


@request("POST /api/v1/schools/{school}/groups")
def _group(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"name": f"篮球{m.n()}", "category": "sports", "capacity": 20, "place": "操场", "grades": ["三年级"]})


@request("PATCH /api/v1/schools/{school}/groups/{group_id}")
def _regroup(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"capacity": 31})


@request("POST /api/v1/schools/{school}/sessions/plan")
def _plan(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"start": "2030-09-02", "end": "2030-09-06"})


@request("GET /api/v1/schools/{school}/sessions")
def _sessions(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(params={"start": "2030-09-02", "end": "2030-09-20"})


@request("POST /api/v1/schools/{school}/sessions/{session_id}/duty")
def _duty(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"staff_id": m.fresh_staff()})


@request("DELETE /api/v1/schools/{school}/sessions/{session_id}/duty/{staff_id}")
def _off_duty(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"staff_id": m.fresh_duty()})


@request("POST /api/v1/schools/{school}/staff")
def _staff(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"name": "新老师", "kind": "teacher"})


@request("PATCH /api/v1/schools/{school}/staff/{staff_id}")
def _restaff(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"phone": "13800000000"})


@request("POST /api/v1/schools/{school}/staff/{staff_id}/cards")
def _card(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"uid": f"0A{m.n():06X}"})


@request("POST /api/v1/schools/{school}/staff/{staff_id}/cards/remove")
def _uncard(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"uid": m.fresh_card()})


@request("POST /api/v1/schools/{school}/vendors")
def _vendor(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"name": "某体育俱乐部", "licence": "鲁教培 0001"})


@request("POST /api/v1/schools/{school}/vendors/{vendor_id}/approvals")
def _approval(m: Matrix, letter: str, user: str | None) -> Req:
    # P6.2: the panel's step is the school's; the district's comes after the panel and the Party organisation.
    if letter == "D":
        vendor = m.fresh_vendor(steps_done=("review_panel", "party_org"))
        return Req(values={"vendor_id": vendor}, json={"step": "district", "approved": True, "note": "区教体局 2030-1 号"})
    return Req(values={"vendor_id": m.fresh_vendor()}, json={"step": "review_panel", "approved": True, "note": "家长代表三人"})


@request("POST /api/v1/schools/{school}/notice")
def _notice(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"text": "告知书（修订）"})


@request("POST /api/v1/schools/{school}/enrollments")
def _apply(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"student": "A1", "guardian_id": m.ids["gA"], "application": "书面申请", "group_id": m.fresh_group()})


@request("POST /api/v1/schools/{school}/enrollments/{enrollment_id}/review")
def _review(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"enrollment_id": m.fresh_enrollment(consent.APPLIED)}, json={"note": "同意"})


@request("POST /api/v1/schools/{school}/enrollments/{enrollment_id}/approve")
def _approve(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"enrollment_id": m.fresh_enrollment(consent.CLASS_REVIEWED)}, json={})


@request("POST /api/v1/schools/{school}/enrollments/{enrollment_id}/signatures")
def _sign(m: Matrix, letter: str, user: str | None) -> Req:
    # P2.2: the admin signs for the school, the guardian for the family, each in their own account.
    party, signer = ("school", "校长") if letter == "A" else ("guardian", "王父")
    body = {"party": party, "signer": signer, "notice_version": m.notice_version()}
    return Req(values={"enrollment_id": m.fresh_enrollment(consent.APPROVED)}, json=body)


@request("POST /api/v1/schools/{school}/enrollments/{enrollment_id}/reject")
def _reject(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(values={"enrollment_id": m.fresh_enrollment(consent.APPLIED)}, json={"reason": "名额已满"})


@request("POST /api/v1/schools/{school}/enrollments/{enrollment_id}/withdraw")
def _withdraw(m: Matrix, letter: str, user: str | None) -> Req:
    values = {"enrollment_id": m.fresh_enrollment(consent.APPLIED)}
    return Req(values=values, json={"request": "家长书面申请退出", "effective_on": "2030-09-30"})


@request("PATCH /api/v1/schools/{school}/students/{student}/guardians/{guardian_id}")
def _link(m: Matrix, letter: str, user: str | None) -> Req:
    return Req(json={"relation": "父亲"})


# --- the tests ---------------------------------------------------------------------------------------


def _effective(app):
    # FastAPI >= 0.13x keeps included routers as branches resolved per request; older ones copy routes.
    for route in app.routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            yield from (ctx for ctx in route.effective_route_contexts() if ctx.dependant is not None)


def _app_routes(app) -> set[str]:
    return {f"{method} {route.path}" for route in _effective(app) if route.path.startswith("/api/v1/") for method in route.methods}


def test_every_route_has_a_row_and_every_row_is_a_route(world):
    routes = _app_routes(world.client.app)
    assert sorted(routes - MATRIX.keys()) == [], "routes with no row in MATRIX: write their row by hand"
    assert sorted(MATRIX.keys() - routes) == [], "rows of MATRIX that are no route"
    assert sorted(REQUESTS.keys() - MATRIX.keys()) == [], "requests for no row"
    for route, row in MATRIX.items():
        own, other = _cells(row)
        assert list(own) == list(OWN) and list(other) == list(OTHER), route
        assert all(CELL.match(cell) for cell in [*own.values(), *other.values()]), route


def _answer(m: Matrix, route: str, letter: str, user: str | None) -> tuple[str, str]:
    """The caller's answer in the table's words: the status, or R / S for a 403 that names the role / school."""
    method, path = route.split(" ", 1)
    req = REQUESTS.get(route, lambda *_: Req())(m, letter, user)
    values = m.defaults() | req.values
    url = re.sub(r"\{(\w+)\}", lambda hit: str(values[hit.group(1)]), path)
    token = req.token or (m.world.tokens[user] if user else None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = m.world.client.request(method, url, headers=headers, json=req.json, files=req.files, data=req.data, params=req.params)
    got = str(r.status_code)
    if r.status_code == 403:
        detail = r.json().get("detail")
        if letter in ROLE and detail == t("role_refused", "zh_CN", role=ROLE[letter].value):
            got = "R"
        elif detail == t("school_refused", "zh_CN", school="s1"):
            got = "S"
    return got, r.text[:160]


def test_the_role_matrix(matrix):
    wrong = []
    for route, row in MATRIX.items():
        own, other = _cells(row)
        got_own = {letter: _answer(matrix, route, letter, user) for letter, user in OWN.items()}
        got_other = {letter: _answer(matrix, route, letter, user) for letter, user in OTHER.items()}
        if {k: v[0] for k, v in got_own.items()} != own or {k: v[0] for k, v in got_other.items()} != other:
            as_row = " ".join(f"{k}={v[0]}" for k, v in got_own.items()) + " | " + " ".join(f"{k}={v[0]}" for k, v in got_other.items())
            why = [f"    {side} {k}: {v[1]}" for side, got, want in (("own", got_own, own), ("other", got_other, other))
                   for k, v in got.items() if v[0] != want[k]]
            wrong.append(f"{route}\n  expected {row}\n  got      {as_row}\n" + "\n".join(why))
    assert not wrong, "\n".join(wrong)
