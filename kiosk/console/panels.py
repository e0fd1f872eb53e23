"""What the main screen's panels say: the person details, the recent decisions, the counters, the footer.

Pure functions of what is shown (no widget, no store): the app hands them a ``Shown``, the roster,
the counts or the sync state and puts the ``Text`` they return on its widgets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.text import Text

from gateway.protocol import RosterStaff
from kiosk.console.text import plain
from kiosk.display import Shown, SyncState
from kiosk.engine import Counts
from kiosk.roster import Roster

Translate = Callable[..., str]
TONE_STYLES = {"allowed": "green", "attention": "yellow", "refused": "bold red"}


def details(shown: Shown, roster: Roster, t: Translate) -> Text:
    """The child (name, class), the guardian (name, relation, masked phone) and, for a guardian
    tapping alone, their children, those they may not take in red."""
    text = Text()
    if shown.name:
        text.append(shown.name, style="bold")
        if shown.class_name:
            text.append(f"  {shown.class_name}")
        text.append("\n")
    if shown.guardian_name:
        text.append(shown.guardian_name, style="bold")
        if shown.relation:
            text.append(f"  {shown.relation}")
        if shown.phone:
            text.append(f"  {t('phone')} {shown.phone}")
        text.append("\n")
    if shown.guardian and not shown.student:
        guardian = roster.guardians.get(shown.guardian)
        for link in guardian.links if guardian else []:
            child = roster.students.get(link.student)
            if child:
                style = "bold red" if link.barred or not link.may_pick_up else ""
                text.append(f"· {child.name} {child.class_name}\n", style=style)
    return text


def recent(decisions: Iterable[Shown]) -> Text:
    text = Text()
    for shown in decisions:
        text.append(shown.at[11:19] + "  ", style="dim")
        text.append(shown.message + "\n", style=TONE_STYLES.get(shown.tone, ""))
    return text


def counters(counts: Counts, t: Translate) -> Text:
    return plain(
        f"{t('count_expected')} {counts.expected}   {t('count_on_site')} {counts.on_site}   "
        f"{t('count_gone')} {counts.gone}   {t('count_absent')} {counts.absent}"
    )


def footer(sync: SyncState, guard: RosterStaff | None, t: Translate) -> Text:
    """Who is on duty at this gate, then online or offline, events waiting, the roster's version and age,
    and why the broker refuses the gate, when it does."""
    if sync.roster_version == 0:
        age = t("roster_none")
    else:
        minutes = max(0, sync.roster_age_s or 0) // 60
        age = t("roster_age", minutes=minutes) if minutes < 120 else t("roster_age_h", hours=minutes // 60)
    duty = t("footer_duty", name=guard.name) if guard else t("footer_no_guard")
    state = t("online" if sync.online else "offline")
    if sync.online and sync.feed == "catching_up":
        state += " · " + t("feed_catching_up")  # the counts may miss other gates' events until it is done
    line = duty + " · " + t("footer_sync", state=state, queue=sync.queue, version=sync.roster_version, age=age)
    if sync.problem:  # why the broker will not have the gate (a wrong password, a refused topic): not just "offline"
        line += " · " + t("link_" + sync.problem)
    return plain(line)
