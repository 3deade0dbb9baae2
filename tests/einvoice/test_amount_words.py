"""Receipt wording of amounts: the table, the rejections, and a cross-check on many numbers."""

from __future__ import annotations

import random

import pytest
from num2words import num2words

from einvoice.amount_words import (
    CURRENCY_WORD,
    ZERO_TENS_WORD,
    amount_in_words,
    number_in_words,
)

TABLE = [
    (0, "Không đồng"),
    (1, "Một đồng"),
    (5, "Năm đồng"),
    (10, "Mười đồng"),
    (11, "Mười một đồng"),
    (14, "Mười bốn đồng"),
    (15, "Mười lăm đồng"),
    (20, "Hai mươi đồng"),
    (21, "Hai mươi mốt đồng"),
    (25, "Hai mươi lăm đồng"),
    (101, "Một trăm linh một đồng"),
    (105, "Một trăm linh năm đồng"),
    (110, "Một trăm mười đồng"),
    (115, "Một trăm mười lăm đồng"),
    (1005, "Một nghìn không trăm linh năm đồng"),
    (1010, "Một nghìn không trăm mười đồng"),
    (1021, "Một nghìn không trăm hai mươi mốt đồng"),
    (6000, "Sáu nghìn đồng"),
    (10_000, "Mười nghìn đồng"),
    (10_005, "Mười nghìn không trăm linh năm đồng"),
    (105_000, "Một trăm linh năm nghìn đồng"),
    (1_000_000, "Một triệu đồng"),
    (1_000_005, "Một triệu không trăm linh năm đồng"),
    (1_000_500, "Một triệu năm trăm đồng"),
    (1_005_000, "Một triệu không trăm linh năm nghìn đồng"),
    (2_000_500, "Hai triệu năm trăm đồng"),
    (2_082_000, "Hai triệu không trăm tám mươi hai nghìn đồng"),
    (1_250_000, "Một triệu hai trăm năm mươi nghìn đồng"),
    (1_000_000_000, "Một tỷ đồng"),
    (1_000_000_001, "Một tỷ không trăm linh một đồng"),
    (
        999_999_999_999,
        "Chín trăm chín mươi chín tỷ chín trăm chín mươi chín triệu "
        "chín trăm chín mươi chín nghìn chín trăm chín mươi chín đồng",
    ),
    (1_000_000_000_000, "Một nghìn tỷ đồng"),
    (2_001_000_000_000, "Hai nghìn không trăm linh một tỷ đồng"),
    (1_000_000_000_000_000, "Một triệu tỷ đồng"),
]


@pytest.mark.parametrize(("vnd", "words"), TABLE)
def test_amount_in_words_table(vnd: int, words: str) -> None:
    assert amount_in_words(vnd) == words


@pytest.mark.parametrize("bad", [-1, -1_000_000, True, False, 1.0, 5.5, "5", None])
def test_rejects_negative_and_non_int(bad: object) -> None:
    with pytest.raises(ValueError, match="amount must"):
        amount_in_words(bad)  # type: ignore[arg-type]


def test_number_in_words_is_lower_case_without_currency() -> None:
    assert number_in_words(0) == "không"
    assert number_in_words(1005) == "một nghìn không trăm linh năm"


def test_constants() -> None:
    assert ZERO_TENS_WORD == "linh"
    assert CURRENCY_WORD == "đồng"


def test_num2words_still_says_le_where_we_say_linh() -> None:
    """If num2words changes its 'vi' wording, this wrapper's post-processing must be revisited."""
    assert num2words(1005, lang="vi") == "một nghìn lẻ năm"
    assert num2words(1_005_000, lang="vi") == "một triệu năm nghìn"


# --- an independent, digit-by-digit reading of the same rules, to cross-check many numbers ---

_DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


def _reference_group(group: int, full: bool) -> list[str]:
    hundreds, tens, units = group // 100, group // 10 % 10, group % 10
    words: list[str] = []
    if full or hundreds:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words.append("linh")
    elif tens == 1:
        words.append("mười")
    else:
        words += [_DIGITS[tens], "mươi"]
    if units == 1 and tens >= 2:
        words.append("mốt")
    elif units == 5 and tens >= 1:
        words.append("lăm")
    elif units:
        words.append(_DIGITS[units])
    return words


def _reference(n: int) -> str:
    """Valid below 10**18: groups of three, 'tỷ' once after the block of billions."""
    if n == 0:
        return "Không đồng"
    scales = ["", "nghìn", "triệu", "tỷ", "nghìn", "triệu"]
    groups = [n // 1000**i % 1000 for i in range(6)]
    words: list[str] = []
    started = False
    for i in range(5, -1, -1):
        if groups[i]:
            words += _reference_group(groups[i], full=started)
            if i != 3 and scales[i]:
                words.append(scales[i])
            started = True
        if i == 3 and any(groups[3:]):
            words.append("tỷ")
    text = " ".join(words)
    return f"{text[0].upper()}{text[1:]} đồng"


def test_cross_check_all_numbers_below_twenty_thousand() -> None:
    for n in range(20_000):
        assert amount_in_words(n) == _reference(n), n


def test_cross_check_random_large_numbers() -> None:
    rng = random.Random(20261120)
    samples = [rng.randrange(10**digits) for digits in range(4, 18) for _ in range(300)]
    # Numbers with many zero groups are where readings go wrong.
    samples += [
        rng.choice([0, 1, 5, 10, 15, 21, 100, 105, 999]) * 1000 ** rng.randrange(6)
        + rng.choice([0, 1, 5, 10, 15, 21, 100, 105, 999]) * 1000 ** rng.randrange(6)
        for _ in range(2000)
    ]
    for n in samples:
        if n < 10**18:
            assert amount_in_words(n) == _reference(n), n


def test_wording_invariants() -> None:
    for n in [*range(0, 3000, 7), 10**12 + 5, 10**15 - 1]:
        words = amount_in_words(n)
        assert words.endswith(" đồng")
        assert words[0].isupper()
        assert "  " not in words
        assert " lẻ " not in f" {words} "


def test_the_cache_never_answers_a_bool_for_an_int() -> None:
    """``amount_in_words`` is cached; ``True == 1`` must still be refused after 1 was worded."""
    assert amount_in_words(1) == "Một đồng"
    with pytest.raises(ValueError):
        amount_in_words(True)
    with pytest.raises(ValueError):
        amount_in_words(False)
    assert amount_in_words(0) == "Không đồng"
