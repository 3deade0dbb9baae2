"""Amounts in words (số tiền bằng chữ) as Vietnamese receipts print them.

Decree 254/2026 art. 23 item 5 requires every fee or charge on a receipt in figures *and in
words*, and the words are part of the signed legal original: a wrong reading is an error the
collector must report on form 04/SS-CTĐT. So the wording is fixed here, once, and tested.

We wrap ``num2words(n, lang="vi")`` for the words of one three-digit group (0-999: "mốt",
"lăm", "mười", "mươi", "trăm" are right there) and write by hand only the parts it gets wrong
for money (checked against num2words 0.5.14):

* **Groups after the first are read in full.** The convention of Vietnamese invoice and
  accounting wording (the "đọc số tiền bằng chữ" Excel add-ins and the invoice libraries we
  could read; MISA's and VNPT's own output we could not check) reads every three-digit group
  after the leading one with its hundreds, so that no digit can be lost in reading:
  1 005 000 is "một triệu *không trăm linh năm* nghìn", 2 082 000 is "hai triệu *không trăm*
  tám mươi hai nghìn", 1 010 is "một nghìn *không trăm* mười". num2words drops the
  "không trăm" ("một triệu năm nghìn", "hai triệu tám mươi hai nghìn") and says
  "một nghìn lẻ mười", which is wrong in any convention.
* **A group that is all zeros is skipped**, as the same convention does: 1 000 500 is
  "Một triệu năm trăm đồng", not "Một triệu không trăm nghìn năm trăm đồng".
* **"linh", not "lẻ"**, for a zero tens digit: 1 005 is "Một nghìn không trăm linh năm đồng".
  Both are correct Vietnamese ("lẻ" is the Southern usage, "linh" the Northern one, which
  official documents commonly follow). The choice is :data:`ZERO_TENS_WORD`.
* **Scales above a billion** repeat "tỷ" ("nghìn tỷ", "triệu tỷ", "tỷ tỷ"), read recursively
  so that 2 001 000 000 000 is "hai nghìn không trăm linh một tỷ"; num2words names 10^15
  "trăm nghìn tỷ" and goes through a float (``"%.2f"``), which loses digits above 2^53.

Kept as num2words says it: "nghìn" (not "ngàn"), "bốn" (not "tư") in "hai mươi bốn", "bảy"
(not "bẩy"), "lăm" (not "nhăm"). The text ends in " đồng" without "chẵn": a receipt amount is
always whole đồng, so "chẵn" (marking no hào/xu) adds nothing.
"""

from __future__ import annotations

import functools
from typing import Final

from num2words import num2words

__all__ = ["CURRENCY_WORD", "ZERO_TENS_WORD", "amount_in_words", "number_in_words"]

ZERO_TENS_WORD: Final = "linh"
"""Word read for a zero tens digit before a non-zero unit (105 → "một trăm linh năm").

"linh" is the Northern and official-document form; set to "lẻ" for the Southern reading.
"""

CURRENCY_WORD: Final = "đồng"
"""Appended after the number: amounts on receipts are integer VND."""

_NUM2WORDS_ZERO_TENS: Final = "lẻ"
"""What num2words 0.5.14 ('vi') says for a zero tens digit; replaced by ZERO_TENS_WORD."""

_BILLION: Final = 1_000_000_000
_GROUP_SCALES: Final = ("", "nghìn", "triệu")
"""Scale words of the three groups below a billion (units, thousands, millions)."""


def _group_words(group: int, *, leading: bool) -> str:
    """Words of one three-digit group (1-999).

    ``leading`` is true only for the first non-zero group of the whole number; every later group
    is read with its hundreds ("không trăm ...") as Vietnamese money wording requires.
    """
    words: str = num2words(group, lang="vi")
    words = " ".join(ZERO_TENS_WORD if w == _NUM2WORDS_ZERO_TENS else w for w in words.split())
    if leading or group >= 100:
        return words
    if group < 10:
        return f"không trăm {ZERO_TENS_WORD} {words}"
    return f"không trăm {words}"


def _below_billion(n: int, *, leading: bool) -> list[str]:
    """Words of ``0 <= n < 10**9`` as a list of parts; zero groups say nothing."""
    parts: list[str] = []
    for index in (2, 1, 0):
        group = n // 1000**index % 1000
        if group == 0:
            continue
        parts.append(_group_words(group, leading=leading))
        if _GROUP_SCALES[index]:
            parts.append(_GROUP_SCALES[index])
        leading = False
    return parts


def _words(n: int, *, leading: bool) -> list[str]:
    """Words of ``n > 0``; numbers of a billion and more are read as "<words of n // 10^9> tỷ"."""
    if n < _BILLION:
        return _below_billion(n, leading=leading)
    billions, rest = divmod(n, _BILLION)
    return [*_words(billions, leading=leading), "tỷ", *_below_billion(rest, leading=False)]


def _check(value: object) -> int:
    # bool is an int subclass: True would otherwise print as "Một đồng".
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"amount must be an int number of đồng, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"amount must not be negative, got {value}")
    return value


def number_in_words(n: int) -> str:
    """Lower-case Vietnamese reading of a non-negative integer, with the rules above.

    Exposed for places that print a number without currency (e.g. a quantity); receipts use
    :func:`amount_in_words`.

    :raises ValueError: ``n`` is negative, a bool or not an int.
    """
    value = _check(n)
    if value == 0:
        return "không"
    return " ".join(_words(value, leading=True))


@functools.lru_cache(maxsize=4096, typed=True)
def amount_in_words(vnd: int) -> str:
    """The receipt wording of an amount of VND: capitalised, ending in " đồng".

    >>> amount_in_words(1_250_000)
    'Một triệu hai trăm năm mươi nghìn đồng'
    >>> amount_in_words(1005)
    'Một nghìn không trăm linh năm đồng'

    :raises ValueError: ``vnd`` is negative, a bool or not an int (a float amount would hide a
        rounding decision that belongs to the fee calculation, not to the wording).
    """
    # Cached (typed, so ``True`` never answers for 1): fees repeat a handful of amounts, and
    # the wording is a fixed function of the integer; it was ~7 % of issuing one receipt.
    words = number_in_words(vnd)
    return f"{words[0].upper()}{words[1:]} {CURRENCY_WORD}"
