"""P5.2: the words that mark a group as collective tutoring or teaching, as a table of cases."""

from __future__ import annotations

import pytest

from central.programme.content import normalise, tutoring_words


@pytest.mark.parametrize(
    "text,found",
    [
        # refused: the words named as the list spells them
        ("数学补课班", ["数学补课"]),
        ("集体补课", ["集体补课"]),
        ("讲新课", ["讲新课"]),
        ("周三下午上新课", ["上新课"]),
        ("新授课辅导", ["新授课"]),
        ("培优补差班", ["培优补差"]),
        ("三年级培优班", ["培优"]),
        ("暑期补习", ["补习"]),
        ("奥数兴趣小组", ["奥数"]),
        ("英语培训班", ["英语培训"]),
        ("数学辅导", ["数学辅导"]),
        ("作文提高班", ["作文提高班"]),
        ("学科教学", ["学科教学"]),
        ("补课，讲新课，再补课", ["补课", "讲新课"]),
        ("Math Tutoring", ["mathtutoring"]),
        ("collective tutoring", ["collectivetutoring"]),
        ("New Lessons for grade 3", ["newlesson"]),
        # normalised: spaces, punctuation, full-width letters, traditional characters
        ("数 学 补·课", ["数学补课"]),
        ("ＭＡＴＨ  tutoring", ["mathtutoring"]),
        ("補課", ["补课"]),
        ("講新課", ["讲新课"]),
        # a negation right before the word: the rule quoted, not broken
        ("作业辅导，不讲新课、不集体补课", []),
        ("严禁组织集体补课", []),
        ("no new lessons", []),
        ("数学不及格的补课", ["补课"]),  # 不 not right before the word
        # honest: P5.1's homework and one-to-one help, a subject alone, phrases that contain 新课
        ("作业辅导", []),
        ("个别辅导", []),
        ("数学作业辅导", []),
        ("数学兴趣小组", []),
        ("科技创新课", []),
        ("新课标必读书目阅读", []),
        ("全新课外活动", []),
        ("创新课后讲新课", ["讲新课"]),
        ("one-to-one tutoring", []),
        ("homework tutoring", []),
        ("Makeup for the drama club", []),
        ("", []),
    ],
)
def test_tutoring_words(text, found):
    assert tutoring_words(text) == found


def test_normalise_keeps_letters_and_digits_only():
    assert normalise(" Ａ-b　c·3補課 ") == "abc3补课"
