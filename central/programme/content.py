"""P5.2: what in a group's name or description marks it as collective tutoring or teaching.

P5.1 allows homework help (作业辅导), one-to-one help (个别辅导), clubs and interest groups of any kind;
P5.2 and P8.2 forbid collective tutoring (集体补课), subject teaching and new lessons in the service's
name. The check is a word list, so that a school can read exactly what is refused:

- ``TUTORING_WORDS``: refused wherever they appear (补课 catches 数学补课班 and 集体补课);
- a school subject only together with a word that makes it tutoring (``SUBJECTS`` × ``SUBJECT_SUFFIXES``:
  数学辅导, 英语培训班, math tutoring), never a subject alone (数学兴趣小组, 数学作业辅导 are honest);
- two kinds of hit do not count: one inside an honest phrase (``HONEST_PHRASES``: 科技创新课,
  新课标阅读, 全新课外活动), and one right after a negation (不补课, 严禁集体补课, 不讲新课, no new
  lessons), since schools quote the rule itself in their descriptions.

Text is matched after ``normalise``: NFKC (full-width letters), case folding, traditional forms of the
characters used here folded to simplified (補課 → 补课), and everything but letters and digits removed,
so spaces, dots or dashes cannot split a word (数 学 补·课).
"""

from __future__ import annotations

import re
import unicodedata

TUTORING_WORDS = (
    "集体补课", "补课", "补习", "培优补差", "培优", "补差", "奥数", "讲新课", "上新课", "新课", "新授课", "集体辅导",
    "学科教学", "学科辅导", "学科培训",
    "collectivetutoring", "grouptutoring", "subjectteaching", "subjecttutoring", "newlesson", "extralesson",
    "remedialclass", "remediallesson", "cramschool", "cramclass", "cramming",
)
SUBJECTS = (
    "语文", "数学", "英语", "物理", "化学", "生物", "历史", "地理", "政治", "作文",
    "chinese", "math", "maths", "mathematics", "english", "physics", "chemistry", "biology", "history",
    "geography", "politics",
)
SUBJECT_SUFFIXES = ("补课", "补习", "辅导", "培训", "提高班", "强化班", "tutoring", "tuition", "lesson")
ALL_WORDS = (*TUTORING_WORDS, *(s + x for s in SUBJECTS for x in SUBJECT_SUFFIXES))
HONEST_PHRASES = ("创新课", "新课标", "新课外")
# Directly before a word: a negation, a verb, what kind of class (不得组织集体补课, 不讲新课, no new lessons).
NEGATED = re.compile(
    "(?:(?:不得|不准|不许|不要|不会|不|严禁|禁止|杜绝|拒绝|没有|无)"
    "(?:进行|组织|开展|举办|安排|搞)?(?:集体|学科)?(?:讲|上|教|授)?"
    "|(?:no|not|never|without)(?:any)?)$"
)
TRADITIONAL = str.maketrans(
    "補課習優奧數輔導學語歷訓強體創標講嚴絕沒無組織開辦進會準許",
    "补课习优奥数辅导学语历训强体创标讲严绝没无组织开办进会准许",
)


def normalise(text: str) -> str:
    """NFKC, case-folded, simplified, letters and digits only."""
    folded = unicodedata.normalize("NFKC", text).casefold().translate(TRADITIONAL)
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] in "LN")


def tutoring_words(text: str) -> list[str]:
    """The words of ``ALL_WORDS`` that ``text`` uses as tutoring, each once, in the order they first
    appear; a word found inside a longer one found (补课 in 集体补课) is not named again."""
    plain = normalise(text)
    honest = [(i, i + len(p)) for p in HONEST_PHRASES for i in _positions(plain, p)]
    hits = [
        (w, i, i + len(w)) for w in ALL_WORDS for i in _positions(plain, w)
        if not _within(i, i + len(w), honest) and NEGATED.search(plain, 0, i) is None
    ]
    named = [
        w for w, a, b in sorted(hits, key=lambda h: h[1])
        if not _within(a, b, [(c, d) for _, c, d in hits if d - c > b - a])
    ]
    return list(dict.fromkeys(named))


def _within(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    return any(a <= start and end <= b for a, b in spans)


def _positions(text: str, word: str) -> list[int]:
    found, i = [], text.find(word)
    while i >= 0:
        found.append(i)
        i = text.find(word, i + 1)
    return found
